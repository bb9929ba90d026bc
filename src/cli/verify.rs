//! `hozon verify document` and `hozon verify token`: reports for investigators.
//! Exit status: 0 valid, 1 invalid, 2 usage or I/O error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use super::read;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY;
use hozon_verifier::path::{validate_path, CrlSet, PathInput, Purpose, TrustAnchors};
use hozon_verifier::policy::Policy;
use hozon_verifier::report::{fmt_time, verify, VerifyInput};

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// For machines.
    Json,
    /// A self-contained page with the timeline of the protection chain.
    Html,
}

/// Certificates, CRLs and time shared by both commands.
#[derive(Args)]
pub struct TrustArgs {
    /// Trust anchors: a PEM or DER certificate file, or a directory of them (repeatable).
    /// Self-signed certificates become trust anchors; others are used only to build paths.
    #[arg(long, required = true)]
    trust: Vec<PathBuf>,
    /// Further intermediate certificates, PEM or DER (repeatable).
    #[arg(long)]
    cert: Vec<PathBuf>,
    /// CRLs, PEM or DER: a file or a directory of them (repeatable).
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Verification time, RFC 3339 (default: now).
    #[arg(long)]
    at: Option<String>,
}

/// `hozon verify document`.
#[derive(Args)]
pub struct DocumentArgs {
    /// The document: a signed FHIR Bundle (JSON) or any file protected by the evidence record.
    file: PathBuf,
    /// Its RFC 4998 evidence record (DER).
    #[arg(long)]
    evidence: Option<PathBuf>,
    /// A JWS signature's timestamp token (default: FILE with the extension .tsr, if present).
    #[arg(long)]
    timestamp: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Algorithm policy: `etsi` (ETSI TS 119 312 v1.5.1, the default), `bsi`, or a TOML file.
    #[arg(long, default_value = "etsi")]
    policy: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// `hozon verify token`.
#[derive(Args)]
pub struct TokenArgs {
    /// The token (a TimeStampToken, or a TimeStampResp holding one), DER.
    file: PathBuf,
    /// The data the token should cover.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Trust material read from the command line.
pub(super) struct Material {
    pub anchors: TrustAnchors,
    /// The anchors' DER (for exports).
    pub anchor_ders: Vec<Vec<u8>>,
    pub extra: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
    pub now: SystemTime,
}

fn files_in(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![path.to_owned()])
    }
}

fn self_signed(der: &[u8]) -> bool {
    rasn::der::decode::<rasn_pkix::Certificate>(der)
        .map(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
        .unwrap_or(false)
}

fn crls_from(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        pem::parse_many(bytes)
            .map(|v| {
                v.into_iter()
                    .filter(|p| p.tag() == "X509 CRL")
                    .map(|p| p.into_contents())
                    .collect()
            })
            .unwrap_or_default()
    } else if rasn::der::decode::<rasn_pkix::CertificateList>(bytes).is_ok() {
        vec![bytes.to_vec()]
    } else {
        // A certificate or other file in a directory of validation data.
        Vec::new()
    }
}

fn material(args: &TrustArgs) -> Result<Material> {
    load_material(&args.trust, &args.cert, &args.crl, args.at.as_deref())
}

/// Reads trust anchors (self-signed certificates under `trust`; others there become
/// intermediates), further certificates and CRLs (files or directories), and the time.
pub(super) fn load_material(
    trust: &[PathBuf],
    cert: &[PathBuf],
    crl: &[PathBuf],
    at: Option<&str>,
) -> Result<Material> {
    let mut anchors = Vec::new();
    let mut extra = Vec::new();
    for path in trust {
        for file in files_in(path)? {
            let bytes = read(&file)?;
            let Ok(certs) = hozon_tsa::certgen::certificates_from_pem_or_der(&bytes) else {
                continue; // not a certificate file (a key, a README): skip it
            };
            for der in certs {
                if self_signed(&der) {
                    anchors.push(der);
                } else {
                    extra.push(der);
                }
            }
        }
    }
    if anchors.is_empty() {
        bail!("no self-signed trust anchor found in --trust");
    }
    for path in cert {
        if path.is_dir() {
            for file in files_in(path)? {
                // A directory of validation data also holds CRLs: take what parses.
                if let Ok(certs) = hozon_tsa::certgen::certificates_from_pem_or_der(&read(&file)?) {
                    extra.extend(certs);
                }
            }
            continue;
        }
        extra.extend(
            hozon_tsa::certgen::certificates_from_pem_or_der(&read(path)?)
                .with_context(|| format!("{} holds no certificate", path.display()))?,
        );
    }
    let mut crls = Vec::new();
    for path in crl {
        for file in files_in(path)? {
            crls.extend(crls_from(&read(&file)?));
        }
    }
    let now = match at {
        None => SystemTime::now(),
        Some(t) => {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| format!("--at {t} is not an RFC 3339 time"))?;
            SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(
                    u64::try_from(t.timestamp()).context("--at before 1970")?,
                )
        }
    };
    Ok(Material {
        anchors: TrustAnchors::new(&anchors).context("reading the trust anchors")?,
        anchor_ders: anchors,
        extra,
        crls,
        now,
    })
}

/// Runs `hozon verify document`; the exit code is the verdict's.
pub fn document(args: DocumentArgs) -> Result<ExitCode> {
    let m = material(&args.trust)?;
    let data = read(&args.file)?;
    let evidence = args.evidence.as_deref().map(read).transpose()?;
    let side_path = args.timestamp.clone().or_else(|| {
        let p = args.file.with_extension("tsr");
        p.is_file().then_some(p)
    });
    let side = side_path.as_deref().map(read).transpose()?;
    let usage = UsagePolicy::default();
    let policy = match args.policy.as_str() {
        "etsi" => Policy::etsi(),
        "bsi" => Policy::bsi(),
        file => Policy::from_toml(
            &std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        )
        .with_context(|| format!("policy {file}"))?,
    };
    let mut report = verify(
        &data,
        &VerifyInput {
            evidence: evidence.as_deref(),
            anchors: &m.anchors,
            extra_certs: &m.extra,
            crls: &m.crls,
            side_token: side.as_deref(),
            usage: &usage,
            remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
            now: m.now,
            policy: &policy,
        },
    );
    if let (Some(p), None) = (&side_path, &args.timestamp) {
        report
            .notes
            .insert(0, format!("signature timestamp read from {}", p.display()));
    }
    match args.format {
        ReportFormat::Text => print!("{}", report.to_text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
        ReportFormat::Html => print!(
            "{}",
            report.to_html(&format!("hozon: {}", args.file.display()))
        ),
    }
    Ok(if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `hozon verify token`.
pub fn token(args: TokenArgs) -> Result<ExitCode> {
    let m = material(&args.trust)?;
    let bytes = read(&args.file)?;
    // A TimeStampResp (as `hozon tsa request` and `openssl ts -reply` write) or a bare token.
    let token = match hozon_tsa::client::parse_response(&bytes) {
        Ok(token) => token,
        Err(_) => bytes,
    };
    let first = hozon_verifier::token::verify_token(&token, None, None, &m.extra);
    let t = match first {
        Ok(t) => t,
        Err(e) => {
            println!("INVALID: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(data) = &args.data {
        let want = t.digest.digest(&read(data)?);
        if want != t.imprint {
            println!(
                "INVALID: the token does not cover {} ({} differs)",
                data.display(),
                t.digest.name()
            );
            return Ok(ExitCode::from(1));
        }
    }
    let path = validate_path(
        &PathInput {
            end_entity: &t.certificate,
            intermediates: &m.extra,
            crls: &CrlSet::new(&m.crls),
            time: t.gen_time,
            purpose: Purpose::TimeStamping,
            remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
        },
        &m.anchors,
    );
    match path {
        Ok(p) => {
            println!("VALID: time-stamped at {}", fmt_time(t.gen_time));
            println!("  TSA: {}", t.tsa_subject);
            println!(
                "  path: {}",
                p.certificates
                    .iter()
                    .map(|c| c.subject.as_str())
                    .collect::<Vec<_>>()
                    .join(" ← ")
            );
            println!("  serial: {}", hex::encode(&t.serial));
            println!("  imprint: {} {}", t.digest.name(), hex::encode(&t.imprint));
            if args.data.is_none() {
                println!("  (no --data: the imprint was not compared with any file)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("INVALID: TSA certificate at {}: {e}", fmt_time(t.gen_time));
            Ok(ExitCode::from(1))
        }
    }
}
