//! A corpus of signed FHIR documents (`hozon dev corpus`), deterministic from a seed and the
//! hierarchy of [`crate::pki`].
//!
//! Document `i` is generated from its own random stream (ChaCha20, stream `i` of the seed), so
//! documents are made in parallel and the output does not depend on the thread count. Good
//! documents:
//! - 10 % are old: signed in 2015–2019 under the legacy SHA-1 CA (CMS with SHA-1: JOSE has no
//!   SHA-1 RSA algorithm);
//! - the rest are signed 2023-01 … 2026-10 by the current card and remote signers, each
//!   within its certificate's validity (and, for `doctor-revoked`, before its revocation):
//!   prescriptions, referral letters and, from card signers only, a few discharge summaries;
//! - every signature is timestamped by Test TSA 1 a few seconds after signing: CAdES-T inside
//!   the CMS, or for JWS a token beside the document (`*.tsr`, see [`crate::sign`]).
//!
//! After them come the deliberately bad documents of [`BadKind`], each with the error code a
//! verifier is expected to report. `manifest.jsonl` lists every file ([`ManifestEntry`]).
//!
//! Layout: `OUT/corpus.json` (parameters), `OUT/manifest.jsonl`, `OUT/docs/NNN/NNNNNNN.json`
//! (a thousand per directory) with `.tsr` side files, `OUT/bad/NAME.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand_chacha03::rand_core::{RngCore, SeedableRng};
use rand_chacha03::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use hozon_verifier::hpki::{CertificateKind, DocumentType};

use crate::fhir::{self, SIG_FORMAT_CMS, SIG_FORMAT_JOSE};
use crate::pki::{revocation_date, Entity, TestPki};
use crate::sign::{self, SignerInput, Stamper, TimestampInput};
use crate::x509::SigAlg;
use crate::DevkitError;

/// Which signature formats good documents use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// JWS only (legacy SHA-1 documents are still CMS).
    Jose,
    /// Detached CMS only.
    Cms,
    /// Half and half.
    Mixed,
}

/// The expected outcome of verifying a document's signature with the hierarchy's roots and
/// CRLs, at its signing time, under a policy that accepts every algorithm it uses
/// (algorithm-policy verdicts, such as SHA-1 after 2012, are the verifier's to derive from
/// `algorithm` and `signing_time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Signature, chain and usage are fine.
    Valid,
    /// Something is wrong; `error` says what.
    Invalid,
}

/// The deliberately bad documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadKind {
    /// A dose changed after signing.
    Tampered,
    /// Signed with another key than the certificate's.
    WrongKey,
    /// Signed by `doctor-revoked` after its revocation.
    Revoked,
    /// Signed by `doctor-expired` after its certificate ended.
    ExpiredAtSigning,
    /// `Bundle.signature.data` is not base64.
    MalformedBase64,
    /// A signed-looking Patient resource, not a Bundle.
    NotABundle,
    /// A remote-signature certificate on a discharge summary, which the usage restriction
    /// does not allow.
    UsageNotPermitted,
}

impl BadKind {
    /// Every kind.
    pub const ALL: [BadKind; 7] = [
        BadKind::Tampered,
        BadKind::WrongKey,
        BadKind::Revoked,
        BadKind::ExpiredAtSigning,
        BadKind::MalformedBase64,
        BadKind::NotABundle,
        BadKind::UsageNotPermitted,
    ];

    /// File-name part.
    pub fn name(self) -> &'static str {
        match self {
            BadKind::Tampered => "tampered",
            BadKind::WrongKey => "wrong-key",
            BadKind::Revoked => "revoked",
            BadKind::ExpiredAtSigning => "expired-at-signing",
            BadKind::MalformedBase64 => "malformed-base64",
            BadKind::NotABundle => "not-a-bundle",
            BadKind::UsageNotPermitted => "usage-not-permitted",
        }
    }

    /// The error code a verifier reports for it: a changed payload breaks a JWS signature
    /// but, in CMS, the messageDigest attribute.
    pub fn error_code(self, format: SignatureFormat) -> &'static str {
        match (self, format) {
            (BadKind::Tampered, SignatureFormat::Cms) => "digest-mismatch",
            (BadKind::Tampered, SignatureFormat::Jose) | (BadKind::WrongKey, _) => {
                "signature-invalid"
            }
            (BadKind::Revoked, _) => "certificate-revoked",
            (BadKind::ExpiredAtSigning, _) => "certificate-expired",
            (BadKind::MalformedBase64, _) => "malformed-signature",
            (BadKind::NotABundle, _) => "not-a-bundle",
            (BadKind::UsageNotPermitted, _) => "usage-not-permitted",
        }
    }
}

/// The format of one signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureFormat {
    /// `application/jose`.
    Jose,
    /// `application/pkcs7-signature`.
    Cms,
}

/// One line of `manifest.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the corpus directory.
    pub file: String,
    /// `Bundle.id` (absent for the not-a-Bundle fixture).
    pub id: Option<String>,
    /// Document type.
    pub doc_type: Option<String>,
    /// The signer's entity id in the hierarchy.
    pub signer: String,
    /// The signer's name.
    pub signer_name: String,
    /// `card` or `remote`.
    pub signer_kind: String,
    /// Signature format.
    pub format: SignatureFormat,
    /// Signature algorithm (`RS256`, `sha256WithRSAEncryption`, `sha1WithRSAEncryption`).
    pub algorithm: String,
    /// The signing time (`Bundle.signature.when`, the CMS signingTime, the JWS `sigT`).
    pub signing_time: DateTime<Utc>,
    /// Where the signature timestamp is: `embedded` (CAdES-T) or a side file's path.
    pub timestamp: Option<String>,
    /// `genTime` of that timestamp.
    pub timestamp_time: Option<DateTime<Utc>>,
    /// Expected verdict.
    pub expect: Verdict,
    /// Expected error code when invalid (see [`BadKind::error_code`]).
    pub error: Option<String>,
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusSpec {
    /// Number of good documents (the bad ones come on top).
    pub count: u64,
    /// Seed of the documents' content, times and token serials.
    pub seed: u64,
    /// Signature formats.
    pub format: Format,
}

/// One generated file and its manifest line.
#[derive(Clone, Debug)]
pub struct GeneratedDocument {
    /// The manifest line (its `file` is where [`write_corpus`] puts it).
    pub entry: ManifestEntry,
    /// The document's bytes (compact JSON).
    pub bytes: Vec<u8>,
    /// A JWS document's timestamp token (DER), written to `entry.timestamp`.
    pub side_token: Option<Vec<u8>>,
}

/// The signers and the TSA a corpus uses, prepared once.
#[derive(Debug)]
pub struct Corpus<'a> {
    pki: &'a TestPki,
    spec: CorpusSpec,
    stamper: Stamper,
    current: Vec<SignerSlot<'a>>,
    legacy: Vec<SignerSlot<'a>>,
}

#[derive(Debug)]
struct SignerSlot<'a> {
    entity: &'a Entity,
    chain: Vec<Vec<u8>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn random_time(rng: &mut ChaCha20Rng, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    let span = (to - from).num_seconds().max(1) as u64;
    // Office hours in Japan look nicer but do not matter; any second will do.
    from + Duration::seconds((rng.next_u64() % span) as i64)
}

fn token_serial(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut s = vec![0u8; 12];
    rng.fill_bytes(&mut s);
    s[0] |= 0x01;
    s
}

impl<'a> Corpus<'a> {
    /// Prepares a corpus over `pki`.
    pub fn new(pki: &'a TestPki, spec: CorpusSpec) -> Result<Self, DevkitError> {
        let stamper = Stamper::new(pki.tsa("tsa-1")?);
        let slot = |id: &str, from: DateTime<Utc>, to: DateTime<Utc>| {
            let entity = pki.entity(id)?;
            let revoked = entity.signer.as_ref().and_then(|s| s.revoked).unwrap_or(to);
            Ok::<_, DevkitError>(SignerSlot {
                entity,
                chain: pki.chain(id)?,
                from: from.max(entity.not_before),
                to: to.min(entity.not_after).min(revoked),
            })
        };
        let (now_from, now_to) = (utc(2023, 1, 1), utc(2026, 10, 31));
        let current = [
            "doctor-01",
            "doctor-02",
            "doctor-03",
            "doctor-revoked",
            "remote-doctor-01",
            "remote-doctor-02",
        ]
        .into_iter()
        .map(|id| slot(id, now_from, now_to))
        .collect::<Result<_, _>>()?;
        let (old_from, old_to) = (utc(2015, 4, 1), utc(2019, 3, 31));
        let legacy = ["legacy-doctor-01", "legacy-doctor-02"]
            .into_iter()
            .map(|id| slot(id, old_from, old_to))
            .collect::<Result<_, _>>()?;
        Ok(Corpus {
            pki,
            spec,
            stamper,
            current,
            legacy,
        })
    }

    fn rng(&self, index: u64) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::seed_from_u64(self.spec.seed);
        rng.set_stream(index);
        rng
    }

    /// Where document `index` goes, relative to the corpus directory.
    pub fn path_of(index: u64) -> String {
        format!("docs/{:03}/{index:07}.json", index / 1000)
    }

    /// Generates good document `index` (0-based, below `spec.count`).
    pub fn good(&self, index: u64) -> Result<GeneratedDocument, DevkitError> {
        let mut rng = self.rng(index);
        let legacy = rng.next_u32() % 100 < 10;
        let slots = if legacy { &self.legacy } else { &self.current };
        let slot = &slots[(rng.next_u32() as usize) % slots.len()];
        let profile =
            slot.entity.signer.as_ref().ok_or_else(|| {
                DevkitError::Missing(format!("{} is not a signer", slot.entity.id))
            })?;
        let roll = rng.next_u32() % 100;
        let doc_type = match (profile.kind, roll) {
            (_, 0..=64) => DocumentType::Prescription,
            (CertificateKind::Remote, _) | (_, 65..=94) => DocumentType::Referral,
            _ => DocumentType::DischargeSummary,
        };
        let format = if slot.entity.alg == SigAlg::Sha1Rsa {
            SignatureFormat::Cms
        } else {
            match self.spec.format {
                Format::Jose => SignatureFormat::Jose,
                Format::Cms => SignatureFormat::Cms,
                Format::Mixed if rng.next_u32() % 2 == 0 => SignatureFormat::Jose,
                Format::Mixed => SignatureFormat::Cms,
            }
        };
        let time = random_time(&mut rng, slot.from, slot.to);
        let doc = fhir::document(&mut rng, doc_type, profile, time);
        self.sign_document(
            &mut rng,
            Self::path_of(index),
            doc,
            slot,
            SignOptions {
                format,
                time,
                key_of: None,
            },
            Some(doc_type),
        )
    }

    fn sign_document(
        &self,
        rng: &mut ChaCha20Rng,
        file: String,
        mut doc: fhir::Document,
        slot: &SignerSlot<'_>,
        opts: SignOptions<'_>,
        doc_type: Option<DocumentType>,
    ) -> Result<GeneratedDocument, DevkitError> {
        let payload = fhir::signed_bytes(&doc.bundle);
        let key = opts.key_of.map_or(&slot.entity.key, |e| &e.key);
        let signer = SignerInput {
            key,
            alg: slot.entity.alg,
            chain: &slot.chain,
            signing_time: opts.time,
        };
        let ts_time = opts.time + Duration::seconds(1 + i64::from(rng.next_u32() % 30));
        let serial = token_serial(rng);
        let (sig_format, data, side_token, timestamp, algorithm) = match opts.format {
            SignatureFormat::Jose => {
                let jws = sign::jws_detached(&payload, signer)?;
                let token =
                    self.stamper
                        .stamp(&sign::jws_timestamp_imprint(&jws)?, ts_time, &serial)?;
                (
                    SIG_FORMAT_JOSE,
                    jws.into_bytes(),
                    Some(token),
                    Some(file.replace(".json", ".tsr")),
                    sign::jws_alg(slot.entity.alg)?.to_owned(),
                )
            }
            SignatureFormat::Cms => {
                let cms = sign::cms_detached(
                    &payload,
                    signer,
                    Some(TimestampInput {
                        stamper: &self.stamper,
                        at: ts_time,
                        serial: &serial,
                    }),
                )?;
                (
                    SIG_FORMAT_CMS,
                    cms,
                    None,
                    Some("embedded".to_owned()),
                    slot.entity.alg.name().to_owned(),
                )
            }
        };
        fhir::attach_signature(
            &mut doc.bundle,
            sig_format,
            &data,
            opts.time.with_timezone(&fhir::jst()),
            &doc.author_ref,
        );
        let profile = slot.entity.signer.as_ref();
        let entry = ManifestEntry {
            file,
            id: Some(doc.id),
            doc_type: doc_type.map(|t| t.as_str().to_owned()),
            signer: slot.entity.id.clone(),
            signer_name: slot.entity.common_name.clone(),
            signer_kind: profile
                .map(|p| p.kind.as_str())
                .unwrap_or("card")
                .to_owned(),
            format: opts.format,
            algorithm,
            signing_time: opts.time,
            timestamp,
            timestamp_time: Some(ts_time),
            expect: Verdict::Valid,
            error: None,
        };
        let mut bytes =
            serde_json::to_vec(&doc.bundle).map_err(|e| DevkitError::Encode(e.to_string()))?;
        bytes.push(b'\n');
        Ok(GeneratedDocument {
            entry,
            bytes,
            side_token,
        })
    }

    /// The bad documents for this corpus' format: each [`BadKind`] in JWS and CMS (or in the
    /// one format asked for).
    pub fn bad(&self) -> Result<Vec<GeneratedDocument>, DevkitError> {
        let formats: &[SignatureFormat] = match self.spec.format {
            Format::Jose => &[SignatureFormat::Jose],
            Format::Cms => &[SignatureFormat::Cms],
            Format::Mixed => &[SignatureFormat::Jose, SignatureFormat::Cms],
        };
        let mut out = Vec::new();
        let mut stream = u64::MAX;
        for kind in BadKind::ALL {
            for &format in formats {
                let mut rng = self.rng(stream);
                stream -= 1;
                let name = match format {
                    SignatureFormat::Jose => "jose",
                    SignatureFormat::Cms => "cms",
                };
                let file = format!("bad/{}-{name}.json", kind.name());
                let mut doc = self.bad_one(&mut rng, kind, format, file)?;
                doc.entry.expect = Verdict::Invalid;
                doc.entry.error = Some(kind.error_code(format).to_owned());
                out.push(doc);
            }
        }
        Ok(out)
    }

    fn find_slot(&self, id: &str) -> Result<SignerSlot<'a>, DevkitError> {
        let entity = self.pki.entity(id)?;
        Ok(SignerSlot {
            entity,
            chain: self.pki.chain(id)?,
            from: entity.not_before,
            to: entity.not_after,
        })
    }

    fn bad_one(
        &self,
        rng: &mut ChaCha20Rng,
        kind: BadKind,
        format: SignatureFormat,
        file: String,
    ) -> Result<GeneratedDocument, DevkitError> {
        let (signer_id, doc_type, time) = match kind {
            BadKind::Revoked => (
                "doctor-revoked",
                DocumentType::Prescription,
                revocation_date() + Duration::days(60),
            ),
            BadKind::ExpiredAtSigning => (
                "doctor-expired",
                DocumentType::Prescription,
                utc(2023, 6, 15) + Duration::hours(2),
            ),
            BadKind::UsageNotPermitted => (
                "remote-doctor-01",
                DocumentType::DischargeSummary,
                utc(2025, 2, 3) + Duration::hours(5),
            ),
            _ => (
                "doctor-01",
                DocumentType::Prescription,
                utc(2024, 9, 12) + Duration::hours(1),
            ),
        };
        let slot = self.find_slot(signer_id)?;
        let profile = slot
            .entity
            .signer
            .as_ref()
            .ok_or_else(|| DevkitError::Missing(format!("{signer_id} is not a signer")))?;
        let doc = fhir::document(rng, doc_type, profile, time);
        let wrong_key = if kind == BadKind::WrongKey {
            Some(self.pki.entity("doctor-02")?)
        } else {
            None
        };
        let mut generated = self.sign_document(
            rng,
            file,
            doc,
            &slot,
            SignOptions {
                format,
                time,
                key_of: wrong_key,
            },
            Some(doc_type),
        )?;
        let mut bundle: Value = serde_json::from_slice(&generated.bytes)
            .map_err(|e| DevkitError::Encode(e.to_string()))?;
        match kind {
            BadKind::Tampered => {
                // The first MedicationRequest's dose: 1 becomes 2 (or 2 becomes 3).
                let dose = bundle
                    .pointer_mut(
                        "/entry/4/resource/dosageInstruction/0/doseAndRate/0/doseQuantity/value",
                    )
                    .ok_or_else(|| DevkitError::Missing("dose to tamper with".into()))?;
                let was = dose.as_u64().unwrap_or(1);
                *dose = json!(was + 1);
            }
            BadKind::MalformedBase64 => {
                if let Some(data) = bundle.pointer_mut("/signature/data") {
                    *data = json!("not base64: this is @@ broken ==");
                }
            }
            BadKind::NotABundle => {
                let patient = bundle
                    .pointer("/entry/1/resource")
                    .cloned()
                    .ok_or_else(|| DevkitError::Missing("patient".into()))?;
                let signature = bundle.get("signature").cloned().unwrap_or(Value::Null);
                let mut p = patient;
                if let Some(obj) = p.as_object_mut() {
                    obj.insert("signature".into(), signature);
                }
                bundle = p;
                generated.entry.id = None;
                generated.entry.doc_type = None;
            }
            BadKind::WrongKey
            | BadKind::Revoked
            | BadKind::ExpiredAtSigning
            | BadKind::UsageNotPermitted => {}
        }
        let mut bytes =
            serde_json::to_vec(&bundle).map_err(|e| DevkitError::Encode(e.to_string()))?;
        bytes.push(b'\n');
        generated.bytes = bytes;
        Ok(generated)
    }
}

#[derive(Clone, Copy)]
struct SignOptions<'e> {
    format: SignatureFormat,
    time: DateTime<Utc>,
    /// Sign with this entity's key instead of the signer's own.
    key_of: Option<&'e Entity>,
}

/// What [`write_corpus`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorpusSummary {
    /// Good documents.
    pub good: u64,
    /// Bad documents.
    pub bad: u64,
    /// Bytes of document files (without side files).
    pub document_bytes: u64,
    /// Smallest and largest document file.
    pub min_size: u64,
    /// Largest document file.
    pub max_size: u64,
}

/// How many documents are generated in parallel before they are written: bounds memory to
/// about this many documents (~10 KiB each).
pub const CHUNK: u64 = 2048;

/// Generates the corpus into `out` (created; must be empty or absent), calling `progress`
/// with the number of good documents written so far.
pub fn write_corpus(
    pki: &TestPki,
    spec: CorpusSpec,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<CorpusSummary, DevkitError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| DevkitError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(DevkitError::Format(format!(
            "{} is not empty; the corpus goes into a new directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(out.join("bad")).map_err(|e| DevkitError::io(out, e))?;
    let corpus = Corpus::new(pki, spec)?;
    let params = json!({
        "generator": "hozon dev corpus",
        "pki_seed": pki.seed,
        "spec": spec,
    });
    write_file(
        &out.join("corpus.json"),
        &serde_json::to_vec_pretty(&params).map_err(|e| DevkitError::Encode(e.to_string()))?,
    )?;
    let manifest_path = out.join("manifest.jsonl");
    let manifest_file =
        std::fs::File::create(&manifest_path).map_err(|e| DevkitError::io(&manifest_path, e))?;
    let mut manifest = std::io::BufWriter::new(manifest_file);
    let mut summary = CorpusSummary {
        min_size: u64::MAX,
        ..CorpusSummary::default()
    };
    // Chunk k+1 is generated (in parallel) while chunk k is written, so the disk and the
    // signing overlap; at most two chunks are in memory.
    let mut start = 0;
    let mut written: Option<(u64, Vec<GeneratedDocument>)> = None;
    while start < spec.count || written.is_some() {
        let end = (start + CHUNK).min(spec.count);
        let to_write = written.take();
        let (generated, wrote) = rayon::join(
            || -> Result<Vec<GeneratedDocument>, DevkitError> {
                (start..end)
                    .into_par_iter()
                    .map(|i| corpus.good(i))
                    .collect()
            },
            || -> Result<Option<u64>, DevkitError> {
                let Some((upto, docs)) = to_write else {
                    return Ok(None);
                };
                for doc in &docs {
                    emit(out, doc, &mut manifest, &mut summary)?;
                    summary.good += 1;
                }
                Ok(Some(upto))
            },
        );
        if let Some(upto) = wrote? {
            progress(upto);
        }
        let generated = generated?;
        if !generated.is_empty() {
            for dir in start / 1000..=end.saturating_sub(1) / 1000 {
                let d = out.join(format!("docs/{dir:03}"));
                std::fs::create_dir_all(&d).map_err(|e| DevkitError::io(&d, e))?;
            }
            written = Some((end, generated));
        }
        start = end;
    }
    for doc in corpus.bad()? {
        emit(out, &doc, &mut manifest, &mut summary)?;
        summary.bad += 1;
    }
    manifest
        .flush()
        .map_err(|e| DevkitError::io(&manifest_path, e))?;
    if summary.min_size == u64::MAX {
        summary.min_size = 0;
    }
    Ok(summary)
}

fn emit(
    out: &Path,
    doc: &GeneratedDocument,
    manifest: &mut impl Write,
    summary: &mut CorpusSummary,
) -> Result<(), DevkitError> {
    write_file(&out.join(&doc.entry.file), &doc.bytes)?;
    if let (Some(token), Some(side)) = (&doc.side_token, &doc.entry.timestamp) {
        write_file(&out.join(side), token)?;
    }
    let mut line =
        serde_json::to_vec(&doc.entry).map_err(|e| DevkitError::Encode(e.to_string()))?;
    line.push(b'\n');
    manifest
        .write_all(&line)
        .map_err(|e| DevkitError::io(&out.join("manifest.jsonl"), e))?;
    let size = doc.bytes.len() as u64;
    summary.document_bytes += size;
    summary.min_size = summary.min_size.min(size);
    summary.max_size = summary.max_size.max(size);
    Ok(())
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), DevkitError> {
    std::fs::write(path, bytes).map_err(|e| DevkitError::io(path, e))
}

/// Reads `manifest.jsonl` of a corpus.
pub fn read_manifest(dir: &Path) -> Result<Vec<ManifestEntry>, DevkitError> {
    let path = dir.join("manifest.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| DevkitError::io(&path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            serde_json::from_str(l)
                .map_err(|e| DevkitError::Format(format!("{} line {}: {e}", path.display(), n + 1)))
        })
        .collect()
}
