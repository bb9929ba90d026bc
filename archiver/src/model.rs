//! What the archive keeps, table by table, and how each record is encoded.
//!
//! | table | column family | key | value |
//! |---|---|---|---|
//! | [`Arrivals`] | arrivals | [`ArrivalKey`]: arrival sequence, then document id | the document's bytes (stores of format 2; [`crate::stored`] reads a document wherever it is) |
//! | [`Objects`] | documents | SHA-256 of the bytes | the bytes (the certificates and CRLs of documents' validation data, in stores before format 3 their signature timestamps, and in stores of format 1 the documents: all content-addressed, so a signer's chain is stored once) |
//! | [`Records`] | validation | document id | [`DocRecord`]: how it was checked at ingest, where its bytes are, and which objects are its validation data |
//! | [`ArrivalRecords`] | arrival_validation | [`ArrivalKey`] | [`ArrivalRecord`]: the same record, and the document's signature timestamp (stores of format 3), beside its bytes in [`Arrivals`] |
//! | [`Pending`] | pending | arrival sequence | [`PendingEntry`]: a document waiting for the next batch |
//! | [`Trees`] | batches | tree id | [`TreeRecord`]: one hash tree and its timestamp |
//! | [`Pages`] | tree | [`PageKey`] | node hashes of one page of a tree, or the ids of its members |
//! | [`Placements`] | placement | document id | [`Placement`]s: (tree, leaf) per hash algorithm, oldest first |
//! | [`Jobs`] | jobs | job id | [`JobRecord`] |
//!
//! Small fixed-shape records are binary; records read rarely (trees, jobs, validation data)
//! are JSON, so that an operator can read them with `ldb` and a later version can add fields.

use hozon_storage::{Cf, Codec, CodecError, Table};
use hozon_tsa::signer::DigestAlgorithm;
use serde::{Deserialize, Serialize};

/// A document id: the SHA-256 of its bytes.
pub type DocId = [u8; 32];

/// The document ids packed in `bytes` (a member page: 32 bytes each).
pub fn doc_ids(bytes: &[u8]) -> impl Iterator<Item = DocId> + '_ {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <DocId>::try_from(c).ok())
}

/// Content-addressed bytes.
pub struct Objects;
impl Table for Objects {
    const CF: Cf = Cf::Documents;
    type Key = DocId;
    type Value = Vec<u8>;
}

/// Document bytes by arrival: a sealed tree lists its documents in arrival order, so they are
/// read back a tree at a time by one scan (see [`crate::stored`]).
pub struct Arrivals;
impl Table for Arrivals {
    const CF: Cf = Cf::Arrivals;
    type Key = ArrivalKey;
    type Value = Vec<u8>;
}

/// Where a document's bytes are in [`Arrivals`]: its arrival sequence (the key it waited
/// under in [`Pending`]), then its id, 40 bytes, big-endian, so keys sort by arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArrivalKey {
    /// Arrival sequence.
    pub seq: u64,
    /// Document id.
    pub id: DocId,
}

impl Codec for ArrivalKey {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.id);
        v
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let (seq, id) = match (bytes.get(..8), bytes.get(8..)) {
            (Some(seq), Some(id)) if bytes.len() == 40 => (seq, id),
            _ => {
                return Err(CodecError::new(
                    "ArrivalKey",
                    format!("{} bytes, want 40", bytes.len()),
                ))
            }
        };
        Ok(ArrivalKey {
            seq: u64::from_be_bytes(seq.try_into().expect("8 bytes")),
            id: id.try_into().expect("32 bytes"),
        })
    }
}

/// A document's validation record and signature timestamp by arrival, the key its bytes
/// have in [`Arrivals`]: a tree's documents are read back in arrival order, and what checking
/// their signatures needs with them (see [`crate::stored::records_in_order`]).
pub struct ArrivalRecords;
impl Table for ArrivalRecords {
    const CF: Cf = Cf::ArrivalValidation;
    type Key = ArrivalKey;
    type Value = ArrivalRecord;
}

/// What [`ArrivalRecords`] keeps of one document: its record (the same as in [`Records`]:
/// records are written once, at ingest, and never changed) and its signature timestamp (a
/// JWS document's side token, DER), which the record names by its SHA-256.
///
/// Encoded as the record's JSON length (u32, big-endian), the JSON, then the token's bytes
/// (none without a token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrivalRecord {
    /// The validation record.
    pub record: DocRecord,
    /// The signature timestamp, DER.
    pub side_token: Option<Vec<u8>>,
}

impl Codec for ArrivalRecord {
    fn encode(&self) -> Vec<u8> {
        let json = json_bytes(&self.record);
        let side = self.side_token.as_deref().unwrap_or_default();
        let mut v = Vec::with_capacity(4 + json.len() + side.len());
        v.extend_from_slice(&(json.len() as u32).to_be_bytes());
        v.extend_from_slice(&json);
        v.extend_from_slice(side);
        v
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let bad = |why: String| CodecError::new("ArrivalRecord", why);
        let len = bytes
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .ok_or_else(|| bad(format!("{} bytes, want at least 4", bytes.len())))?;
        let json = bytes
            .get(4..4 + len)
            .ok_or_else(|| bad(format!("record of {len} bytes in {} bytes", bytes.len())))?;
        let Json(record) = Json::<DocRecord>::decode(json)?;
        let side = &bytes[4 + len..];
        Ok(ArrivalRecord {
            side_token: (!side.is_empty()).then(|| side.to_vec()),
            record,
        })
    }
}

/// Per-document validation record.
pub struct Records;
impl Table for Records {
    const CF: Cf = Cf::Validation;
    type Key = DocId;
    type Value = Json<DocRecord>;
}

/// Documents waiting to be sealed.
pub struct Pending;
impl Table for Pending {
    const CF: Cf = Cf::Pending;
    type Key = u64;
    type Value = PendingEntry;
}

/// Hash trees and their timestamps.
pub struct Trees;
impl Table for Trees {
    const CF: Cf = Cf::Batches;
    type Key = u64;
    type Value = Json<TreeRecord>;
}

/// Pages of tree nodes and of tree members.
pub struct Pages;
impl Table for Pages {
    const CF: Cf = Cf::Tree;
    type Key = PageKey;
    type Value = Vec<u8>;
}

/// Where each document sits.
pub struct Placements;
impl Table for Placements {
    const CF: Cf = Cf::Placement;
    type Key = DocId;
    type Value = PlacementList;
}

/// Long-running jobs.
pub struct Jobs;
impl Table for Jobs {
    const CF: Cf = Cf::Jobs;
    type Key = u64;
    type Value = Json<JobRecord>;
}

/// The JSON of `value`, as [`Json`] encodes it.
fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain structs of strings, numbers and vectors cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A JSON-encoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize + for<'de> Deserialize<'de>> Codec for Json<T> {
    fn encode(&self) -> Vec<u8> {
        json_bytes(&self.0)
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| CodecError::new(std::any::type_name::<T>(), e.to_string()))
    }
}

/// How a document was checked when it was ingested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocStatus {
    /// Its signature, signature timestamp and signer path verified.
    Verified,
    /// It failed verification and was kept on the operator's explicit request.
    Unverified,
    /// Archived as opaque bytes; no signature was checked.
    Opaque,
}

impl DocStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DocStatus::Verified => "verified",
            DocStatus::Unverified => "unverified",
            DocStatus::Opaque => "opaque",
        }
    }
}

/// The validation record of one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    /// How it was checked.
    pub status: DocStatus,
    /// For an unverified document: the verifier's code and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
    /// Ingest time, Unix seconds.
    pub ingested_at: u64,
    /// Size in bytes.
    pub size: u64,
    /// The arrival sequence its bytes are stored under in [`Arrivals`]; absent for a document
    /// stored before format 2, whose bytes are in [`Objects`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<u64>,
    /// `application/jose`, `application/pkcs7-signature`, or absent for opaque objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig_format: Option<String>,
    /// `Bundle.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// Document type (LOINC code of `Composition.type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_type: Option<String>,
    /// The signer's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The signature timestamp's genTime, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    /// Validation data, as ids of [`Objects`]: certificates (signer path, signature TSA path).
    #[serde(default)]
    pub certificates: Vec<String>,
    /// CRLs.
    #[serde(default)]
    pub crls: Vec<String>,
    /// A JWS signature's timestamp token, kept beside the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_token: Option<String>,
}

/// A document waiting for a batch: its id and ingest time (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    /// Document id.
    pub id: DocId,
    /// Ingest time, Unix seconds.
    pub at: u64,
}

impl Codec for PendingEntry {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.id.to_vec();
        v.extend_from_slice(&self.at.to_be_bytes());
        v
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() != 40 {
            return Err(CodecError::new(
                "PendingEntry",
                format!("{} bytes, want 40", bytes.len()),
            ));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[..32]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&bytes[32..]);
        Ok(PendingEntry {
            id,
            at: u64::from_be_bytes(at),
        })
    }
}

/// What a tree's leaves are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum TreeKind {
    /// Leaves are documents: `H(d)` in chain 0, the hash-tree renewal leaf
    /// `H'(H'(d) ‖ H'(ArchiveTimeStampSequence))` in later chains.
    Documents {
        /// The chain (ArchiveTimeStampChain index) this tree starts.
        chain: u32,
    },
    /// A timestamp renewal: leaves are one node per renewed tree, over the hashes of every
    /// timestamp of that tree's chain.
    Renewal,
}

/// One hash tree and its timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// What the leaves are.
    pub kind: TreeKind,
    /// Hash algorithm name (`sha256` …).
    pub digest: String,
    /// Number of leaves.
    pub leaves: u64,
    /// The root, hex.
    pub root: String,
    /// The timestamp token over the root, DER, base64.
    pub token: String,
    /// Its genTime, Unix seconds.
    pub gen_time: u64,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// The TSA certificate's notAfter, Unix seconds.
    pub tsa_not_after: u64,
    /// The token's signature algorithm and key size (as the policy names them).
    pub signature: (String, usize),
    /// The hash of the token's signature (SignerInfo.digestAlgorithm).
    pub signer_digest: String,
    /// Which endpoint issued the token.
    pub tsa_url: String,
    /// When the tree was committed, Unix seconds.
    pub sealed_at: u64,
    /// For document trees: the timestamp renewals of this tree's chain, oldest first, as
    /// (renewal tree id, leaf index).
    #[serde(default)]
    pub renewals: Vec<(u64, u64)>,
    /// For document trees: the tree that took its documents over in a hash-tree renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<u64>,
}

impl TreeRecord {
    /// The hash algorithm.
    pub fn digest_algorithm(&self) -> Result<DigestAlgorithm, CodecError> {
        hozon_tsa::config::parse_digest(&self.digest)
            .ok_or_else(|| CodecError::new("TreeRecord", format!("digest {}", self.digest)))
    }

    /// The token, DER.
    pub fn token_der(&self) -> Result<Vec<u8>, CodecError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.token)
            .map_err(|e| CodecError::new("TreeRecord", format!("token: {e}")))
    }
}

/// Which page of a tree: nodes of level `level` (a multiple of [`crate::pages::PAGE_LEVELS`])
/// from `page * PAGE_WIDTH`, or, with `level` [`PageKey::MEMBERS`], the ids of the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageKey {
    /// Tree id.
    pub tree: u64,
    /// Level, or [`PageKey::MEMBERS`].
    pub level: u8,
    /// Page number.
    pub page: u32,
}

impl PageKey {
    /// The level number that marks member pages (document ids of a document tree, tree ids
    /// of a renewal tree).
    pub const MEMBERS: u8 = 0xff;
}

impl Codec for PageKey {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(13);
        v.extend_from_slice(&self.tree.to_be_bytes());
        v.push(self.level);
        v.extend_from_slice(&self.page.to_be_bytes());
        v
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() != 13 {
            return Err(CodecError::new(
                "PageKey",
                format!("{} bytes, want 13", bytes.len()),
            ));
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[..8]);
        let mut p = [0u8; 4];
        p.copy_from_slice(&bytes[9..]);
        Ok(PageKey {
            tree: u64::from_be_bytes(t),
            level: bytes[8],
            page: u32::from_be_bytes(p),
        })
    }
}

/// One (tree, leaf index) a document sits at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Tree id.
    pub tree: u64,
    /// Leaf index.
    pub leaf: u64,
}

/// A document's placements, oldest (chain 0) first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlacementList(pub Vec<Placement>);

impl Codec for PlacementList {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 * self.0.len());
        for p in &self.0 {
            v.extend_from_slice(&p.tree.to_be_bytes());
            v.extend_from_slice(&p.leaf.to_be_bytes());
        }
        v
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() % 16 != 0 {
            return Err(CodecError::new(
                "PlacementList",
                format!("{} bytes, not a multiple of 16", bytes.len()),
            ));
        }
        Ok(PlacementList(
            bytes
                .chunks_exact(16)
                .map(|c| {
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&c[..8]);
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&c[8..]);
                    Placement {
                        tree: u64::from_be_bytes(t),
                        leaf: u64::from_be_bytes(l),
                    }
                })
                .collect(),
        ))
    }
}

/// What a job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum JobKind {
    /// Seal pending documents.
    Seal,
    /// A timestamp renewal of these trees.
    TimestampRenewal {
        /// Document trees covered.
        trees: Vec<u64>,
    },
    /// A hash-tree renewal of the documents of these trees, to `digest`.
    HashTreeRenewal {
        /// Document trees whose documents move to the new tree.
        trees: Vec<u64>,
        /// New hash algorithm.
        digest: String,
        /// The id reserved for the new tree; its leaf pages are written as the job goes.
        new_tree: u64,
        /// Leaf pages already written.
        pages_done: u32,
        /// Members in the new tree (fixed when the job starts).
        members: u64,
    },
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Started and not finished (after a crash: to be resumed).
    Running,
    /// Finished.
    Done,
    /// Failed; `detail` says why. A later run retries it.
    Failed,
}

/// A job record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// What it does.
    pub kind: JobKind,
    /// Where it stands.
    pub state: JobState,
    /// Started, Unix seconds.
    pub started: u64,
    /// Last update, Unix seconds.
    pub updated: u64,
    /// What happened (the resulting tree, or the error).
    #[serde(default)]
    pub detail: String,
}

/// Hex of an id.
pub fn hex_id(id: &[u8]) -> String {
    // `hex::encode` goes through a char iterator; this path runs for every object of every
    // ingested document.
    let mut out = vec![0u8; id.len() * 2];
    match hex::encode_to_slice(id, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => hex::encode(id),
    }
}

/// An id from hex.
pub fn parse_id(s: &str) -> Option<DocId> {
    // Into place, without a vector: bulk runs parse every captured object's id per document.
    let mut id = DocId::default();
    hex::decode_to_slice(s.trim(), &mut id).ok()?;
    Some(id)
}

/// Unix seconds of a time.
pub fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A time from Unix seconds.
pub fn from_unix(s: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_records_round_trip_and_reject_bad_lengths() {
        let e = PendingEntry {
            id: [7; 32],
            at: 1_700_000_000,
        };
        assert_eq!(PendingEntry::decode(&e.encode()).unwrap(), e);
        assert!(PendingEntry::decode(&[0; 39]).is_err());
        let k = PageKey {
            tree: 3,
            level: 8,
            page: 9,
        };
        assert_eq!(PageKey::decode(&k.encode()).unwrap(), k);
        // Byte order is logical order: all of tree 3 sorts before tree 4.
        let k4 = PageKey {
            tree: 4,
            level: 0,
            page: 0,
        };
        assert!(k.encode() < k4.encode());
        let p = PlacementList(vec![
            Placement { tree: 1, leaf: 2 },
            Placement { tree: 9, leaf: 0 },
        ]);
        assert_eq!(PlacementList::decode(&p.encode()).unwrap(), p);
        assert!(PlacementList::decode(&[0; 15]).is_err());
    }

    #[test]
    fn arrival_records_round_trip_with_and_without_a_token_and_reject_bad_lengths() {
        let record = DocRecord {
            status: DocStatus::Verified,
            failure: None,
            ingested_at: 1_700_000_000,
            size: 5120,
            arrival: Some(42),
            sig_format: Some("application/jose".into()),
            bundle_id: Some("b-1".into()),
            doc_type: Some("57833-6".into()),
            signer: Some("CN=doctor".into()),
            signed_at: Some("2024-04-01T00:00:00Z".into()),
            certificates: vec![hex_id(&[1; 32])],
            crls: vec![hex_id(&[2; 32])],
            side_token: Some(hex_id(&[3; 32])),
        };
        for side_token in [Some(vec![0x30, 0x03, 2, 1, 5]), None] {
            let r = ArrivalRecord {
                record: record.clone(),
                side_token,
            };
            let bytes = r.encode();
            assert_eq!(ArrivalRecord::decode(&bytes).unwrap(), r);
            // Cut inside the length, inside the record: refused, not misread.
            assert!(ArrivalRecord::decode(&bytes[..3]).is_err());
            let json_len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert!(ArrivalRecord::decode(&bytes[..4 + json_len - 1]).is_err());
        }
    }

    #[test]
    fn ids_parse_only_from_64_hex_digits() {
        let id: DocId = std::array::from_fn(|i| i as u8 * 7);
        let hex = hex_id(&id);
        assert_eq!(parse_id(&hex), Some(id));
        assert_eq!(parse_id(&hex.to_uppercase()), Some(id));
        assert_eq!(parse_id(&format!(" {hex}\n")), Some(id));
        for bad in [
            &hex[..62],
            &hex[..63],
            &format!("{hex}00"),
            &hex.replace('0', "g"),
            "",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
