//! `hozon demo`: the whole chain on an embedded default, in plain words.
//!
//! 1. a look-alike HPKI hierarchy (generated from a fixed seed; no real keys);
//! 2. two Time-Stamp Authorities on loopback ports, signing with that hierarchy's TSA keys in
//!    software (production keys live in an HSM): TSA 2, whose certificate ends on 2027-06-30,
//!    and TSA 1, valid to 2036;
//! 3. a corpus of signed FHIR documents (e-prescriptions, referral letters, a few broken ones);
//! 4. ingest into the archive (RocksDB under DATA/archive), with every signature verified;
//! 5. sealing under one Merkle-batched timestamp from TSA 2;
//! 6. the renewal plan now, then after a simulated clock jump to 2027-04-15, when TSA 2's
//!    certificate is inside the renewal window: a timestamp renewal by TSA 1;
//! 7. export of one document and its verification as of 2027-08-01, after TSA 2's
//!    certificate has expired: still valid, thanks to the renewal.
//!
//! Re-running reuses DATA: the documents are already archived and nothing new is due.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use hozon_archiver::ingest::Mode;
use hozon_archiver::model::hex_id;
use hozon_archiver::seal::SealWhen;
use hozon_devkit::corpus::{read_manifest, write_corpus, CorpusSpec, Format, Verdict};
use hozon_devkit::pki::TestPki;
use hozon_tsa::config::{KeySection, TsaSection};
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::report::{verify, Verdict as ReportVerdict, VerifyInput};

use super::archive::{ingest_files, open, setup, tsa_pool, Common, Setup};
use super::tsa::assemble;

/// Seeds of the demo's hierarchy and corpus (any fixed values; the output is reproducible).
const PKI_SEED: u64 = 2024;
const CORPUS_SEED: u64 = 7;
/// Documents in the demo corpus.
const DOCUMENTS: u64 = 2_000;
/// The demo's renewal window: 90 days before an end date.
const WINDOW_DAYS: u32 = 90;

fn at(s: &str) -> Result<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s)?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64))
}

/// A TSA over HTTP on a loopback port, signing with `id`'s key from the dev hierarchy.
struct RunningTsa {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn start_tsa(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    pki_dir: &Path,
    id: &str,
) -> Result<RunningTsa> {
    let mut section = TsaSection {
        data: data.join(format!("tsa-{id}")),
        chain: vec![pki_dir.join(format!("certs/{id}.pem"))],
        key: KeySection {
            backend: "software".into(),
            software_key: Some(pki_dir.join(format!("keys/{id}.key.pem"))),
            ..KeySection::default()
        },
        ..TsaSection::default()
    };
    // The demo machine's clock need not be NTP-synchronised.
    section.clock.require_sync = false;
    let tsa = assemble(&section, false).with_context(|| format!("starting {id}"))?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/tsa", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = hozon_tsa::http::router(tsa.issuer.clone(), tsa.opts.clone());
    let server = rt.spawn(hozon_tsa::http::serve(listener, app, async {
        let _ = rx.await;
    }));
    Ok(RunningTsa {
        url,
        stop: Some(tx),
        server,
    })
}

fn archive_setup(data: &Path, pki_dir: &Path, tsa_url: &str) -> Result<Setup> {
    let common = Common::for_demo(data, pki_dir, tsa_url);
    let mut s = setup(&common, true)?;
    s.section.renewal_window_days = Some(WINDOW_DAYS);
    Ok(s)
}

pub fn run(data: &Path) -> Result<()> {
    println!("hozon demo — everything below lives in {}", data.display());
    println!();
    std::fs::create_dir_all(data)?;
    let data = data.canonicalize()?;

    println!("1. A look-alike HPKI hierarchy (seed {PKI_SEED}; test keys only, never real ones):");
    let pki_dir = data.join("pki");
    let pki = if pki_dir.join("pki.json").exists() {
        println!("   reusing {}", pki_dir.display());
        TestPki::load(&pki_dir)?
    } else {
        let pki = TestPki::generate(PKI_SEED)?;
        pki.write(&pki_dir)?;
        pki
    };
    println!(
        "   {} certificates: an MHLW-style root, doctor and pharmacist signing CAs, remote-",
        pki.entities.len()
    );
    println!("   signature certificates, and two TSAs (TSA 2's certificate ends 2027-06-30).");
    println!();

    println!("2. Two Time-Stamp Authorities on loopback, keys in software for the demo:");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut tsa2 = start_tsa(&rt, &data, &pki_dir, "tsa-2")?;
    let mut tsa1 = start_tsa(&rt, &data, &pki_dir, "tsa-1")?;
    println!("   TSA 2 at {} (certificate until 2027-06-30)", tsa2.url);
    println!("   TSA 1 at {} (certificate until 2036)", tsa1.url);
    println!();

    println!("3. Signed FHIR documents, as the main service receives them:");
    let corpus = data.join("corpus");
    if corpus.join("manifest.jsonl").exists() {
        println!("   reusing {}", corpus.display());
    } else {
        write_corpus(
            &pki,
            CorpusSpec {
                count: DOCUMENTS,
                seed: CORPUS_SEED,
                format: Format::Mixed,
            },
            &corpus,
            |_| {},
        )?;
    }
    let manifest = read_manifest(&corpus)?;
    let bad = manifest
        .iter()
        .filter(|e| e.expect == Verdict::Invalid)
        .count();
    println!(
        "   {} documents (e-prescriptions, referral letters, discharge summaries; JWS and",
        manifest.len()
    );
    println!("   CAdES signatures, each with the main service's timestamp), {bad} of them broken");
    println!("   on purpose (tampered, revoked signer, expired certificate …).");
    println!();

    println!("4. Ingest: every signature, timestamp and signer certificate is verified; good");
    println!("   documents are stored with their validation data in one durable write per group:");
    let setup = archive_setup(&data, &pki_dir, &tsa2.url)?;
    let archive = open(&setup.section)?;
    let files: Vec<std::path::PathBuf> = manifest.iter().map(|e| corpus.join(&e.file)).collect();
    let started = std::time::Instant::now();
    let mut shown = 0;
    let (stored, dup, refused) =
        ingest_files(&archive, &setup.trust, &files, Mode::default(), |line| {
            if line.status == "refused" && shown < 4 {
                shown += 1;
                println!(
                    "   refused {}: [{}] {}",
                    line.file.file_name().unwrap_or_default().to_string_lossy(),
                    line.detail,
                    line.reason.as_deref().unwrap_or("")
                );
            }
        })?;
    println!(
        "   {stored} stored, {dup} already archived, {refused} refused, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!();

    println!("5. Sealing: all waiting documents become one Merkle tree; one timestamp from");
    println!("   TSA 2 covers its root, and so every document in it:");
    let pool2 = tsa_pool(&setup)?;
    let sealed = archive.seal(&pool2, &setup.settings, SealWhen::Force, SystemTime::now())?;
    if sealed.is_empty() {
        println!("   nothing new to seal");
    }
    for s in &sealed {
        println!(
            "   batch {}: {} documents, root {}…, timestamp {}",
            s.tree,
            s.documents,
            &s.root[..16],
            s.gen_time
        );
    }
    println!();

    let policy = super::archive::policy("etsi", Some(WINDOW_DAYS))?;
    println!(
        "6. Renewal planning (ETSI TS 119 312 policy, renew {WINDOW_DAYS} days before an end):"
    );
    let plan = archive.plan(&policy, SystemTime::now())?;
    match (&plan.due.first(), &plan.next) {
        (Some(d), _) => println!("   now: due already — {}", d.reason),
        (None, Some(n)) => println!("   now: nothing due; next on {} — {}", n.due, n.reason),
        (None, None) => println!("   now: nothing due or scheduled"),
    }
    let jump = at("2027-04-15T00:00:00Z")?;
    println!("   simulated clock jump to 2027-04-15:");
    let plan = archive.plan(&policy, jump)?;
    if plan.due.is_empty() {
        println!("   nothing due (this data directory was renewed by an earlier run)");
    }
    for d in plan.due.iter().take(3) {
        println!(
            "   due: batch {} ({} documents), {} — {}",
            d.tree,
            d.documents,
            d.kind.as_str(),
            d.reason
        );
    }
    if !plan.due.is_empty() {
        let setup1 = archive_setup(&data, &pki_dir, &tsa1.url)?;
        let pool1 = tsa_pool(&setup1)?;
        let never = AtomicBool::new(false);
        for line in archive.renew(
            &plan,
            &pool1,
            setup1.settings.renew_digest,
            &|_, _| {},
            &never,
        )? {
            println!("   done: {line}");
        }
    }
    println!();

    println!("7. Export one e-prescription and verify it offline as an investigator would,");
    println!("   as of 2027-08-01 — after TSA 2's certificate has expired:");
    let entry = manifest
        .iter()
        .find(|e| {
            e.expect == Verdict::Valid
                && e.doc_type.as_deref() == Some("prescription")
                && e.algorithm != "sha1WithRSAEncryption"
        })
        .context("the corpus has an e-prescription")?;
    let bytes = std::fs::read(corpus.join(&entry.file))?;
    let id = hozon_archiver::ingest::sha256(&bytes);
    let out = data.join("export");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let exported = archive.export(&id, &out, &setup.anchor_ders)?;
    println!(
        "   {} → {} ({} files, evidence with {} archive timestamps)",
        entry.file,
        out.display(),
        exported.files.len(),
        exported.timestamps
    );
    let evidence = std::fs::read(out.join("evidence.ers"))?;
    let side = std::fs::read(out.join("document.tsr")).ok();
    let report = verify(
        &std::fs::read(out.join(&exported.document))?,
        &VerifyInput {
            evidence: Some(&evidence),
            anchors: &setup.trust.anchors,
            extra_certs: &setup.trust.extra_certs,
            crls: &setup.trust.crls,
            side_token: side.as_deref(),
            usage: &UsagePolicy::default(),
            remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
            now: at("2027-08-01T00:00:00Z")?,
            policy: &policy,
        },
    );
    for step in &report.steps {
        println!(
            "   {} {} — {}",
            if step.ok { "✓" } else { "✗" },
            step.title,
            step.time.as_deref().unwrap_or("")
        );
    }
    match &report.verdict {
        ReportVerdict::Valid {
            unchanged_since, ..
        } => println!(
            "   VALID: signed by {}, unchanged since {}",
            entry.signer_name,
            unchanged_since.as_deref().unwrap_or("?")
        ),
        ReportVerdict::Invalid { step, reason, .. } => {
            println!("   INVALID at {step}: {reason}")
        }
    }
    println!();
    println!("   Document id {}", hex_id(&id));
    println!("   Check it yourself:");
    println!(
        "     hozon verify document {}/{} --evidence {}/evidence.ers --trust {}/trust \\",
        out.display(),
        exported.document,
        out.display(),
        pki_dir.display()
    );
    println!(
        "         --cert {}/validation --crl {}/validation --at 2027-08-01T00:00:00Z",
        out.display(),
        out.display()
    );
    println!();
    let status = archive.status(&policy, SystemTime::now())?;
    println!(
        "Archive status now (hozon archive status --data {}):",
        data.display()
    );
    for line in status.to_text().lines() {
        println!("   {line}");
    }

    for t in [&mut tsa1, &mut tsa2] {
        if let Some(tx) = t.stop.take() {
            let _ = tx.send(());
        }
    }
    rt.block_on(async {
        let _ = (&mut tsa1.server).await;
        let _ = (&mut tsa2.server).await;
    });
    if !report.is_valid() {
        anyhow::bail!("the exported document did not verify");
    }
    Ok(())
}

impl Common {
    /// The options the demo would pass on the command line.
    fn for_demo(data: &Path, pki_dir: &Path, tsa_url: &str) -> Common {
        Common::new(
            data.to_path_buf(),
            vec![tsa_url.to_owned()],
            vec![pki_dir.join("trust")],
            vec![pki_dir.join("crl")],
        )
    }
}
