//! Export: everything an investigator needs to check one document offline.
//!
//! ```text
//! OUT/
//!   README.txt          what this is and the commands that check it
//!   manifest.json       the same, for machines
//!   document.json       the document exactly as archived (document.bin for opaque files)
//!   document.tsr        a JWS signature's timestamp token, if it had one
//!   evidence.ers        the RFC 4998 evidence record, DER
//!   validation/         certificates (.cer) and CRLs (.crl) captured at ingest, and the
//!                       certificates the archive timestamps carry
//!   anchors/            the trust anchors this archive was configured with (check them
//!                       against your own copy before relying on them)
//! ```

use std::path::Path;

use serde_json::json;

use crate::evidence::Reader;
use crate::model::{hex_id, parse_id, DocId, DocStatus, Objects, Records};
use crate::{Archive, ArchiveError};

/// What was exported.
#[derive(Clone, Debug)]
pub struct Exported {
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
    /// The document's file name.
    pub document: String,
    /// Archive timestamps in the evidence record.
    pub timestamps: usize,
}

fn write(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    files: &mut Vec<String>,
) -> Result<(), ArchiveError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    files.push(name.to_owned());
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Archive {
    /// Writes document `id` with its evidence into `out` (created; must be empty if it
    /// exists). `anchors` are the DER trust anchors the archive was configured with.
    pub fn export(
        &self,
        id: &DocId,
        out: &Path,
        anchors: &[Vec<u8>],
    ) -> Result<Exported, ArchiveError> {
        if out.exists()
            && std::fs::read_dir(out)
                .map_err(|e| io(out, e))?
                .next()
                .is_some()
        {
            return Err(ArchiveError::Io {
                path: out.display().to_string(),
                reason: "exists and is not empty; refusing to mix exports".into(),
            });
        }
        let mut reader = Reader::new(&self.store);
        let (bytes, placements) = reader.document(id)?;
        let ers = reader.evidence_record(id)?;
        let record = self
            .store
            .get::<Records>(id)?
            .ok_or_else(|| ArchiveError::Damaged(format!("document {} has no record", hex_id(id))))?
            .0;
        let mut files = Vec::new();
        let doc_name = if record.status == DocStatus::Opaque {
            "document.bin"
        } else {
            "document.json"
        };
        write(out, doc_name, &bytes, &mut files)?;
        write(out, "evidence.ers", &ers, &mut files)?;
        let object = |hex: &str| -> Result<Vec<u8>, ArchiveError> {
            let oid = parse_id(hex)
                .ok_or_else(|| ArchiveError::Damaged(format!("bad object id {hex}")))?;
            self.store
                .get::<Objects>(&oid)?
                .ok_or_else(|| ArchiveError::Damaged(format!("validation object {hex} missing")))
        };
        if let Some(t) = &record.side_token {
            let token = crate::stored::side_token(&self.store, id, &record)?
                .ok_or_else(|| ArchiveError::Damaged(format!("signature timestamp {t} missing")))?;
            write(out, "document.tsr", &token, &mut files)?;
        }
        for (n, c) in record.certificates.iter().enumerate() {
            write(
                out,
                &format!("validation/cert-{n}.cer"),
                &object(c)?,
                &mut files,
            )?;
        }
        for (n, c) in record.crls.iter().enumerate() {
            write(
                out,
                &format!("validation/crl-{n}.crl"),
                &object(c)?,
                &mut files,
            )?;
        }
        let mut tsa_certs: Vec<Vec<u8>> = Vec::new();
        let mut timestamps = 0;
        for p in &placements {
            let tree = reader.tree(p.tree)?;
            let mut tokens = vec![tree.token.clone()];
            for &(r, _) in &tree.record.renewals {
                tokens.push(reader.tree(r)?.token.clone());
            }
            timestamps += tokens.len();
            for t in tokens {
                for c in carried_certificates(&t) {
                    if !tsa_certs.contains(&c) {
                        tsa_certs.push(c);
                    }
                }
            }
        }
        for (n, c) in tsa_certs.iter().enumerate() {
            write(out, &format!("validation/tsa-{n}.cer"), c, &mut files)?;
        }
        for (n, a) in anchors.iter().enumerate() {
            write(out, &format!("anchors/anchor-{n}.cer"), a, &mut files)?;
        }
        let id_hex = hex_id(id);
        let manifest = json!({
            "id": id_hex,
            "document": doc_name,
            "evidence": "evidence.ers",
            "status": record.status.as_str(),
            "failure": record.failure,
            "ingested_at": hozon_verifier::report::fmt_time(crate::model::from_unix(record.ingested_at)),
            "signer": record.signer,
            "signed_at": record.signed_at,
            "bundle_id": record.bundle_id,
            "doc_type": record.doc_type,
            "archive_timestamps": timestamps,
            "hash_trees": placements.len(),
            "files": files,
        });
        write(
            out,
            "manifest.json",
            serde_json::to_string_pretty(&manifest)
                .unwrap_or_default()
                .as_bytes(),
            &mut files,
        )?;
        let readme = format!(
            "hozon archive export\n\
             ====================\n\n\
             Document id (SHA-256 of {doc_name}): {id_hex}\n\
             Checked at ingest: {status}{failure}\n\
             Signer: {signer}\n\
             Signature timestamp: {signed}\n\
             Evidence: evidence.ers, an RFC 4998 Evidence Record with {timestamps} archive\n\
             timestamp(s) in {chains} hash-tree chain(s).\n\n\
             To check it offline with hozon (valid: exit status 0):\n\n\
             \x20   hozon verify document {doc_name} --evidence evidence.ers \\\n\
             \x20       --trust YOUR-TRUSTED-ROOTS --cert validation --crl validation\n\n\
             anchors/ holds the roots this archive trusted; compare them with your own copy\n\
             of the HPKI and TSA roots before using them as --trust.\n\n\
             The evidence record alone can also be checked with any RFC 4998 implementation\n\
             (for example Bouncy Castle's org.bouncycastle.tsp.ers) against {doc_name}.\n",
            status = record.status.as_str(),
            failure = record
                .failure
                .as_ref()
                .map(|(c, r)| format!(" ({c}: {r})"))
                .unwrap_or_default(),
            signer = record.signer.as_deref().unwrap_or("-"),
            signed = record.signed_at.as_deref().unwrap_or("-"),
            chains = placements.len(),
        );
        write(out, "README.txt", readme.as_bytes(), &mut files)?;
        Ok(Exported {
            files,
            document: doc_name.to_owned(),
            timestamps,
        })
    }
}

/// The certificates a timestamp token carries (for an offline path to its TSA).
fn carried_certificates(token: &[u8]) -> Vec<Vec<u8>> {
    hozon_verifier::token::verify_token(token, None, None, &[])
        .map(|t| t.carried)
        .unwrap_or_default()
}
