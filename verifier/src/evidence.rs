//! The structure of an RFC 4998 evidence record checked against the data it protects
//! (RFC 4998 §5.3): every archive timestamp, in order, covers what it must.
//!
//! - The first ArchiveTimeStamp of the first chain covers `H(data)` through its reduced hash
//!   tree (or directly, without one).
//! - Each later ArchiveTimeStamp of a chain (timestamp renewal) covers the previous one's
//!   `timeStamp`: `H(DER of that ContentInfo)` must be in its first partial hash tree.
//! - The first ArchiveTimeStamp of each later chain (hash-tree renewal, new algorithm `H'`)
//!   covers `H'(H'(data) ‖ H'(DER of the ArchiveTimeStampSequence of the earlier chains))`;
//!   both the plain and the sorted concatenation are accepted (BSI's TR-ESOR tool and others
//!   differ), and which one was found is reported.
//! - Every timestamp token is verified ([`crate::token::verify_token`]: signature, ESS
//!   binding, TSA certificate profile) and its imprint must equal the recomputed root, with
//!   the chain's hash algorithm.
//!
//! Not here (later in issue 5): the validity of each TSA's certificate path at the time of the
//! step that covered it, and the algorithm policy. The steps returned carry what those checks
//! need (times, algorithms, TSA certificates).

use std::time::SystemTime;

use hozon_tsa::signer::DigestAlgorithm;

use crate::ers::{ArchiveTimeStamp, ArchiveTimeStampSequence, EvidenceRecord};
use crate::hashtree::{root_from_reduced, HashTreeError, Leniency};
use crate::token::{verify_token, TokenVerifyError, VerifiedToken};

/// Why an evidence record does not protect the data.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// Not a DER EvidenceRecord.
    #[error("not an RFC 4998 EvidenceRecord: {0}")]
    Decode(String),
    /// version is not 1, or there is no archive timestamp.
    #[error("malformed evidence record: {0}")]
    Malformed(String),
    /// A hash algorithm is unknown or not allowed in evidence (SHA-1 is read, MD5 is not).
    #[error("chain {chain}: unsupported hash algorithm {oid}")]
    Algorithm {
        /// Chain index.
        chain: usize,
        /// The OID.
        oid: String,
    },
    /// The reduced hash tree is malformed.
    #[error("chain {chain}, timestamp {index}: {source}")]
    Tree {
        /// Chain index.
        chain: usize,
        /// Index in the chain.
        index: usize,
        /// What is wrong.
        source: HashTreeError,
    },
    /// The recomputed root is not what the timestamp covers.
    #[error("chain {chain}, timestamp {index}: {what} is not covered by the timestamp")]
    NotCovered {
        /// Chain index.
        chain: usize,
        /// Index in the chain.
        index: usize,
        /// What should have been covered.
        what: &'static str,
    },
    /// The timestamp token itself is bad.
    #[error("chain {chain}, timestamp {index}: {source}")]
    Token {
        /// Chain index.
        chain: usize,
        /// Index in the chain.
        index: usize,
        /// What is wrong.
        source: TokenVerifyError,
    },
    /// A timestamp is older than the one it renews.
    #[error("chain {chain}, timestamp {index}: time {time} is before the step it renews")]
    TimeOrder {
        /// Chain index.
        chain: usize,
        /// Index in the chain.
        index: usize,
        /// Its genTime.
        time: String,
    },
}

/// What one archive timestamp did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// The first timestamp over the data.
    Initial,
    /// A new timestamp over the previous ones, same hash algorithm.
    TimestampRenewal,
    /// A new chain with a new hash algorithm, over data and all earlier chains.
    HashTreeRenewal {
        /// The two hashes were concatenated in sorted order rather than data-hash first.
        sorted: bool,
    },
}

/// One verified archive timestamp.
#[derive(Clone, Debug)]
pub struct EvidenceStep {
    /// Chain index (0-based).
    pub chain: usize,
    /// Index within the chain.
    pub index: usize,
    /// What it did.
    pub kind: StepKind,
    /// Hash algorithm of the chain.
    pub digest: DigestAlgorithm,
    /// Number of partial hash trees (0: the timestamp covers the hash directly).
    pub tree_depth: usize,
    /// Lenient forms that were needed to read it.
    pub leniency: Vec<Leniency>,
    /// The verified timestamp.
    pub token: VerifiedToken,
}

fn digest_of(
    ats: &ArchiveTimeStamp,
    token: &VerifiedToken,
    chain: usize,
) -> Result<DigestAlgorithm, EvidenceError> {
    match &ats.digest_algorithm {
        None => Ok(token.digest),
        Some(alg) => {
            DigestAlgorithm::from_oid(&alg.algorithm).ok_or_else(|| EvidenceError::Algorithm {
                chain,
                oid: alg.algorithm.to_string(),
            })
        }
    }
}

fn reduced_lists(ats: &ArchiveTimeStamp) -> Vec<Vec<Vec<u8>>> {
    ats.reduced_hashtree
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|list| list.iter().map(|h| h.to_vec()).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn encode<T: rasn::Encode>(v: &T) -> Result<Vec<u8>, EvidenceError> {
    rasn::der::encode(v).map_err(|e| EvidenceError::Malformed(format!("re-encoding: {e}")))
}

/// Checks that `record_der` protects `data` (see the module documentation) and returns the
/// steps, oldest first. `extra_certs` are searched for TSA certificates that tokens do not
/// carry.
pub fn check_evidence(
    record_der: &[u8],
    data: &[u8],
    extra_certs: &[Vec<u8>],
) -> Result<Vec<EvidenceStep>, EvidenceError> {
    let record: EvidenceRecord =
        rasn::der::decode(record_der).map_err(|e| EvidenceError::Decode(e.to_string()))?;
    if record.version != 1.into() {
        return Err(EvidenceError::Malformed(format!(
            "version {} (RFC 4998 knows only v1)",
            record.version
        )));
    }
    let sequence = &record.archive_time_stamp_sequence;
    if sequence.is_empty() || sequence.iter().any(|c| c.is_empty()) {
        return Err(EvidenceError::Malformed(
            "an empty ArchiveTimeStampSequence or ArchiveTimeStampChain".into(),
        ));
    }
    let listed: Vec<&rasn::types::ObjectIdentifier> = record
        .digest_algorithms
        .iter()
        .map(|a| &a.algorithm)
        .collect();
    for (c, chain) in sequence.iter().enumerate() {
        if let Some(alg) = chain.first().and_then(|a| a.digest_algorithm.as_ref()) {
            if !listed.contains(&&alg.algorithm) {
                return Err(EvidenceError::Malformed(format!(
                    "chain {c} uses {} but digestAlgorithms does not list it",
                    alg.algorithm
                )));
            }
        }
    }
    let mut steps: Vec<EvidenceStep> = Vec::new();
    let mut last_time: Option<SystemTime> = None;
    for (c, chain) in sequence.iter().enumerate() {
        let mut previous_stamps: Vec<Vec<u8>> = Vec::new();
        for (i, ats) in chain.iter().enumerate() {
            let token_der = encode(&ats.time_stamp)?;
            let token = verify_token(&token_der, None, None, extra_certs).map_err(|source| {
                EvidenceError::Token {
                    chain: c,
                    index: i,
                    source,
                }
            })?;
            let digest = digest_of(ats, &token, c)?;
            if token.digest != digest {
                return Err(EvidenceError::NotCovered {
                    chain: c,
                    index: i,
                    what: "the tree root (the token uses another hash algorithm than the chain)",
                });
            }
            let lists = reduced_lists(ats);
            let accept = |root: &[u8]| root == token.imprint.as_slice();
            let tree_err = |source| EvidenceError::Tree {
                chain: c,
                index: i,
                source,
            };
            let covered = |leaf: &[u8], what: &'static str| {
                root_from_reduced(digest, leaf, &lists, accept)
                    .map_err(tree_err)?
                    .map(|found| found.leniency)
                    .ok_or(EvidenceError::NotCovered {
                        chain: c,
                        index: i,
                        what,
                    })
            };
            let (kind, leniency) = if i > 0 {
                // Timestamp renewal: the previous timestamp's hash is a leaf of this tree.
                let previous = previous_stamps
                    .last()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let leniency = covered(&digest.digest(previous), "the previous archive timestamp")?;
                (StepKind::TimestampRenewal, leniency)
            } else if c == 0 {
                (
                    StepKind::Initial,
                    covered(&digest.digest(data), "the data")?,
                )
            } else {
                let earlier: ArchiveTimeStampSequence = sequence[..c].to_vec();
                let h_seq = digest.digest(&encode(&earlier)?);
                let h_data = digest.digest(data);
                let plain = digest.digest(&[h_data.as_slice(), h_seq.as_slice()].concat());
                let mut pair = [h_data.as_slice(), h_seq.as_slice()];
                pair.sort_unstable();
                let sorted = digest.digest(&pair.concat());
                let mut result = None;
                for (leaf, is_sorted) in [(plain, false), (sorted, true)] {
                    match root_from_reduced(digest, &leaf, &lists, accept) {
                        Ok(Some(found)) => {
                            result = Some((
                                StepKind::HashTreeRenewal { sorted: is_sorted },
                                found.leniency,
                            ));
                            break;
                        }
                        Ok(None) | Err(HashTreeError::LeafNotInFirstList) => {}
                        Err(e) => return Err(tree_err(e)),
                    }
                }
                result.ok_or(EvidenceError::NotCovered {
                    chain: c,
                    index: i,
                    what: "the data and the earlier chains",
                })?
            };
            if let Some(t) = last_time {
                if token.gen_time < t {
                    return Err(EvidenceError::TimeOrder {
                        chain: c,
                        index: i,
                        time: token.gen_time_text.clone(),
                    });
                }
            }
            last_time = Some(token.gen_time);
            previous_stamps.push(token_der);
            steps.push(EvidenceStep {
                chain: c,
                index: i,
                kind,
                digest,
                tree_depth: lists.len(),
                leniency,
                token,
            });
        }
    }
    Ok(steps)
}
