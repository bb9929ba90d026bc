//! Ingest: check a document, capture its validation data, store it.
//!
//! [`prepare`] is pure CPU work (parse, verify, hash) and runs in parallel; [`Archive::commit`]
//! writes a group of prepared documents in one durable batch (one fsync for the group) and
//! only then reports them stored, so that an acknowledged document is never lost.
//!
//! The same bytes always get the same id (their SHA-256) and are stored once: a second ingest
//! reports `duplicate` and changes nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use hozon_storage::Durability;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::{verify_document, DocumentContext, UsagePolicy};
use hozon_verifier::path::{CrlSet, PathCertificate, TrustAnchors};
use hozon_verifier::report::fmt_time;

use crate::model::{
    hex_id, parse_id, unix, ArrivalKey, ArrivalRecord, ArrivalRecords, Arrivals, DocId, DocRecord,
    DocStatus, Json, Objects, Pending, PendingEntry, Records,
};
use crate::{Archive, ArchiveError};

/// What ingest verifies against.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Trust anchors (HPKI roots, TSA roots).
    pub anchors: TrustAnchors,
    /// Intermediate certificates, DER.
    pub extra_certs: Vec<Vec<u8>>,
    /// CRLs, DER (captured as validation data of every document whose path they were
    /// checked against).
    pub crls: Crls,
    /// The remote-signature usage restriction.
    pub usage: UsagePolicy,
}

impl Trust {
    /// What [`verify_document`] checks a document against: this trust, the document's
    /// signature timestamp (a JWS signature's, sent beside it) and the time of the check.
    pub fn context<'a>(
        &'a self,
        side_token: Option<&'a [u8]>,
        now: SystemTime,
    ) -> DocumentContext<'a> {
        DocumentContext {
            anchors: &self.anchors,
            crls: self.crls.set(),
            extra_certs: &self.extra_certs,
            usage: &self.usage,
            remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
            side_token,
            now,
        }
    }
}

/// The CRLs ingest checks against, each with its object id, computed once and shared by
/// every document prepared against them.
///
/// A national CA's CRL can be megabytes. Hashing it for its id and copying it into every
/// prepared document, as ingest did, would cost milliseconds and megabytes per document; now
/// a document carries a reference, and [`Archive::commit`] writes each CRL once per process.
///
/// They are decoded once as well ([`CrlSet`]): finding a megabyte CRL again in the
/// verifier's cache for each document would cost a comparison of all its bytes.
#[derive(Clone, Debug, Default)]
pub struct Crls {
    der: Arc<Vec<Vec<u8>>>,
    ids: Arc<[DocId]>,
    set: CrlSet,
}

impl Crls {
    /// The CRLs `der`, with their ids (SHA-256).
    pub fn new(der: Vec<Vec<u8>>) -> Crls {
        let ids = der.iter().map(|c| sha256(c)).collect();
        let set = CrlSet::new(&der);
        Crls {
            der: Arc::new(der),
            ids,
            set,
        }
    }

    /// The CRLs decoded, for path validation.
    pub fn set(&self) -> &CrlSet {
        &self.set
    }

    /// Their object ids, in order.
    pub fn ids(&self) -> &[DocId] {
        &self.ids
    }

    /// The CRLs with their object ids.
    pub fn objects(&self) -> impl Iterator<Item = (&DocId, &[u8])> {
        self.ids.iter().zip(self.der.iter().map(Vec::as_slice))
    }
}

impl From<Vec<Vec<u8>>> for Crls {
    fn from(der: Vec<Vec<u8>>) -> Crls {
        Crls::new(der)
    }
}

impl FromIterator<Vec<u8>> for Crls {
    fn from_iter<I: IntoIterator<Item = Vec<u8>>>(iter: I) -> Crls {
        Crls::new(iter.into_iter().collect())
    }
}

impl std::ops::Deref for Crls {
    type Target = [Vec<u8>];
    fn deref(&self) -> &[Vec<u8>] {
        &self.der
    }
}

/// Most ids of shared validation data an [`Archive`] remembers as stored (32 bytes each,
/// 2 MiB of ids): far more than the certificates and CRLs of the signers active at once.
pub const STORED_OBJECTS_MAX: usize = 65_536;

/// How a document is taken in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// Archive the bytes without any signature check (any file).
    pub opaque: bool,
    /// Keep a document that fails verification, marked unverified, instead of refusing it.
    pub keep_unverified: bool,
}

/// A document refused, with the verifier's stable code and reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Refused {
    /// Stable code (`signature-invalid`, `certificate-revoked` …).
    pub code: String,
    /// What is wrong.
    pub reason: String,
}

/// A document ready to be written.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Its id.
    pub id: DocId,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its record.
    pub record: DocRecord,
    /// Validation data objects of this document (certificates, side token) with their ids.
    pub objects: Vec<(DocId, Vec<u8>)>,
    /// The CRLs it was checked against (their ids are in the record), shared.
    pub crls: Crls,
}

/// The outcome of one ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored with this status.
    New(DocStatus),
    /// Already in the archive; nothing changed.
    Duplicate,
}

fn object(bytes: &[u8]) -> (DocId, Vec<u8>) {
    (sha256(bytes), bytes.to_vec())
}

/// SHA-256 as an id.
pub fn sha256(bytes: &[u8]) -> DocId {
    let mut id = [0u8; 32];
    id.copy_from_slice(&DigestAlgorithm::Sha256.digest(bytes));
    id
}

/// Checks one document and prepares its records (no I/O). `side_token` is a JWS signature's
/// timestamp kept beside the document.
pub fn prepare(
    bytes: Vec<u8>,
    side_token: Option<Vec<u8>>,
    mode: Mode,
    trust: &Trust,
    now: SystemTime,
) -> Result<Prepared, Refused> {
    let id = sha256(&bytes);
    let mut record = DocRecord {
        status: DocStatus::Opaque,
        failure: None,
        ingested_at: unix(now),
        size: bytes.len() as u64,
        arrival: None,
        sig_format: None,
        bundle_id: None,
        doc_type: None,
        signer: None,
        signed_at: None,
        certificates: Vec::new(),
        crls: Vec::new(),
        side_token: None,
    };
    let mut objects = Vec::new();
    if let Some(t) = &side_token {
        let o = object(t);
        record.side_token = Some(hex_id(&o.0));
        objects.push(o);
    }
    if mode.opaque {
        return Ok(Prepared {
            id,
            bytes,
            record,
            objects,
            crls: Crls::default(),
        });
    }
    let mut crls = Crls::default();
    match verify_document(&bytes, &trust.context(side_token.as_deref(), now)) {
        Ok(v) => {
            record.status = DocStatus::Verified;
            record.sig_format = Some(
                match v.format {
                    hozon_verifier::document::SignatureFormat::Jose => "application/jose",
                    hozon_verifier::document::SignatureFormat::Cms => "application/pkcs7-signature",
                }
                .to_owned(),
            );
            record.bundle_id = v.bundle_id.clone();
            record.doc_type = v.doc_type_code.clone();
            record.signer = v.signer.certificates.first().map(|c| c.subject.clone());
            record.signed_at = v.timestamp.as_ref().map(|t| fmt_time(t.token.gen_time));
            let mut certs: Vec<&PathCertificate> = v.signer.certificates.iter().collect();
            if let Some(t) = &v.timestamp {
                certs.extend(t.tsa_path.certificates.iter());
            }
            for c in certs {
                // The path already knows each certificate's SHA-256 (its object id).
                record.certificates.push(hex_id(&c.sha256));
                objects.push((c.sha256, c.der.clone()));
            }
            record.crls = trust.crls.ids().iter().map(|k| hex_id(k)).collect();
            crls = trust.crls.clone();
        }
        Err(e) if mode.keep_unverified => {
            record.status = DocStatus::Unverified;
            record.failure = Some((e.code().to_owned(), e.to_string()));
        }
        Err(e) => {
            return Err(Refused {
                code: e.code().to_owned(),
                reason: e.to_string(),
            })
        }
    }
    Ok(Prepared {
        id,
        bytes,
        record,
        objects,
        crls,
    })
}

impl Archive {
    /// Writes `docs` in one durable batch and reports each as new or duplicate, in order.
    /// Nothing is reported stored before the batch is on disk.
    pub fn commit(&self, docs: Vec<Prepared>) -> Result<Vec<Stored>, ArchiveError> {
        // Ids being written by a concurrent commit count as duplicates here: exactly one
        // writer stores each document.
        let mut claimed = Vec::with_capacity(docs.len());
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            for d in &docs {
                claimed.push(in_flight.insert(d.id));
            }
        }
        let result = self.commit_claimed(&docs, &claimed);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for (d, c) in docs.iter().zip(&claimed) {
            if *c {
                in_flight.remove(&d.id);
            }
        }
        result
    }

    fn commit_claimed(
        &self,
        docs: &[Prepared],
        claimed: &[bool],
    ) -> Result<Vec<Stored>, ArchiveError> {
        let mut outcome = Vec::with_capacity(docs.len());
        let mut fresh = Vec::new();
        for (d, &c) in docs.iter().zip(claimed) {
            if c && !self.store.contains::<Records>(&d.id)? {
                fresh.push(d);
                outcome.push(Stored::New(d.record.status));
            } else {
                outcome.push(Stored::Duplicate);
            }
        }
        if fresh.is_empty() {
            return Ok(outcome);
        }
        let first = self.reserve_seqs(fresh.len() as u64);
        let mut batch = self.store.batch();
        // Objects written by this batch, and the shared ones among them.
        let mut objects: HashSet<DocId> = HashSet::new();
        let mut shared = Vec::new();
        {
            let stored = self
                .stored_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (n, d) in fresh.iter().enumerate() {
                // Stored by arrival, the order the document's tree will list it in.
                let seq = first + n as u64;
                batch.put::<Arrivals>(&ArrivalKey { seq, id: d.id }, &d.bytes);
                let mut record = d.record.clone();
                record.arrival = Some(seq);
                // A JWS document's side token is its own: kept with its record beside the
                // document, where re-checking a tree's signatures reads them in one scan.
                // Everything else it refers to (signer and TSA chains, CRLs) is shared by
                // many documents.
                let side = d.record.side_token.as_deref().and_then(parse_id);
                let side_token = side.and_then(|s| {
                    d.objects
                        .iter()
                        .find(|(oid, _)| *oid == s)
                        .map(|(_, b)| b.clone())
                });
                let record = Json(record);
                batch.put::<Records>(&d.id, &record);
                batch.put::<ArrivalRecords>(
                    &ArrivalKey { seq, id: d.id },
                    &ArrivalRecord {
                        record: record.0,
                        side_token,
                    },
                );
                batch.put::<Pending>(
                    &seq,
                    &PendingEntry {
                        id: d.id,
                        at: d.record.ingested_at,
                    },
                );
                // The side token is written above, with the record.
                for (oid, bytes) in d.objects.iter().filter(|(oid, _)| Some(*oid) != side) {
                    if objects.insert(*oid) && !stored.contains(oid) {
                        // Content-addressed and never deleted: a certificate is written
                        // once per process, not with every document. Documents arriving
                        // one request at a time, a few per durable write, rewrote their
                        // chains each time: kilobytes per document in the WAL.
                        batch.put::<Objects>(oid, bytes);
                        shared.push(*oid);
                    }
                }
                for (oid, bytes) in d.crls.objects() {
                    // Likewise; a megabyte CRL per document would be most of the WAL.
                    if objects.insert(*oid) && !stored.contains(oid) {
                        batch.put::<Objects>(oid, &bytes.to_vec());
                        shared.push(*oid);
                    }
                }
            }
        }
        self.store.commit(batch, Durability::Durable)?;
        // Only once they are on disk.
        if !shared.is_empty() {
            let mut stored = self
                .stored_objects
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if stored.len() + shared.len() > STORED_OBJECTS_MAX {
                stored.clear();
            }
            stored.extend(shared);
        }
        metrics::counter!("hozon_archive_ingested_total").increment(fresh.len() as u64);
        Ok(outcome)
    }
}
