//! RFC 4998 Evidence Record Syntax types. The module is `DEFINITIONS IMPLICIT TAGS`, so every
//! context tag here is implicit (rasn's default for non-CHOICE types).

use hozon_tsa::signer::DigestAlgorithm;
use rasn::prelude::*;
use rasn_cms::ContentInfo;
use rasn_pkix::{AlgorithmIdentifier, Attribute};

/// `id-aa-er-internal` (RFC 4998 §7): an evidence record inside the signed data it protects.
pub const ID_AA_ER_INTERNAL: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 49]);
/// `id-aa-er-external` (RFC 4998 §7): an evidence record kept beside the data.
pub const ID_AA_ER_EXTERNAL: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 50]);

/** An evidence record (RFC 4998 §3).

```asn1
EvidenceRecord ::= SEQUENCE {
    version                   INTEGER { v1(1) } ,
    digestAlgorithms          SEQUENCE OF AlgorithmIdentifier,
    cryptoInfos               [0] CryptoInfos OPTIONAL,
    encryptionInfo            [1] EncryptionInfo OPTIONAL,
    archiveTimeStampSequence  ArchiveTimeStampSequence
}

CryptoInfos ::= SEQUENCE SIZE (1..MAX) OF Attribute
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct EvidenceRecord {
    /// Always 1.
    pub version: Integer,
    /// Every digest algorithm used in the record.
    pub digest_algorithms: SequenceOf<AlgorithmIdentifier>,
    /// Additional verification data (certificates, CRLs …).
    #[rasn(tag(context, 0))]
    pub crypto_infos: Option<SequenceOf<Attribute>>,
    /// How encrypted data was encrypted (not used by hozon).
    #[rasn(tag(context, 1))]
    pub encryption_info: Option<EncryptionInfo>,
    /// The chains of archive timestamps, oldest first.
    pub archive_time_stamp_sequence: ArchiveTimeStampSequence,
}

/** RFC 4998 §3.

```asn1
EncryptionInfo ::= SEQUENCE {
    encryptionInfoType   OBJECT IDENTIFIER,
    encryptionInfoValue  ANY DEFINED BY encryptionInfoType
}
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct EncryptionInfo {
    /// What the value is.
    pub encryption_info_type: ObjectIdentifier,
    /// The value.
    pub encryption_info_value: Any,
}

/** RFC 4998 §5: chains of archive timestamps; a new chain starts at each hash-tree renewal.

```asn1
ArchiveTimeStampSequence ::= SEQUENCE OF ArchiveTimeStampChain
ArchiveTimeStampChain    ::= SEQUENCE OF ArchiveTimeStamp
```
*/
pub type ArchiveTimeStampSequence = SequenceOf<ArchiveTimeStampChain>;

/// RFC 4998 §5: archive timestamps of one hash algorithm; each after the first renews the
/// timestamp before it. See [`ArchiveTimeStampSequence`].
pub type ArchiveTimeStampChain = SequenceOf<ArchiveTimeStamp>;

/** One archive timestamp (RFC 4998 §4).

```asn1
ArchiveTimeStamp ::= SEQUENCE {
    digestAlgorithm [0] AlgorithmIdentifier OPTIONAL,
    attributes      [1] Attributes OPTIONAL,
    reducedHashtree [2] SEQUENCE OF PartialHashtree OPTIONAL,
    timeStamp       ContentInfo}

PartialHashtree ::= SEQUENCE OF OCTET STRING

Attributes ::= SET SIZE (1..MAX) OF Attribute
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct ArchiveTimeStamp {
    /// The hash algorithm of the tree (absent: the timestamp's imprint algorithm).
    #[rasn(tag(context, 0))]
    pub digest_algorithm: Option<AlgorithmIdentifier>,
    /// Extra information.
    #[rasn(tag(context, 1))]
    pub attributes: Option<SetOf<Attribute>>,
    /// The path from the data's hash to the timestamped root.
    #[rasn(tag(context, 2))]
    pub reduced_hashtree: Option<SequenceOf<PartialHashtree>>,
    /// The RFC 3161 timestamp token over the root.
    pub time_stamp: ContentInfo,
}

/// `PartialHashtree ::= SEQUENCE OF OCTET STRING` (RFC 4998 §4).
pub type PartialHashtree = SequenceOf<OctetString>;

/// Why an evidence record could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ErsBuildError {
    /// The timestamp token is not a DER ContentInfo.
    #[error("timestamp token is not a DER ContentInfo: {0}")]
    Token(String),
    /// DER encoding failed.
    #[error("DER encoding failed: {0}")]
    Encode(String),
}

impl ArchiveTimeStamp {
    /// An archive timestamp over a tree of `digest` with the reduced hash tree `reduced`
    /// (empty: the token covers the hash directly, and `reducedHashtree` is omitted).
    /// `digestAlgorithm` is written so that readers need not take it from the token.
    pub fn new(
        digest: DigestAlgorithm,
        reduced: Vec<Vec<Vec<u8>>>,
        token_der: &[u8],
    ) -> Result<Self, ErsBuildError> {
        let time_stamp: ContentInfo =
            rasn::der::decode(token_der).map_err(|e| ErsBuildError::Token(e.to_string()))?;
        Ok(ArchiveTimeStamp::with_token(digest, reduced, time_stamp))
    }

    /// [`ArchiveTimeStamp::new`] with the token already decoded (an archive building the
    /// records of many documents under one timestamp decodes it once).
    pub fn with_token(
        digest: DigestAlgorithm,
        reduced: Vec<Vec<Vec<u8>>>,
        time_stamp: ContentInfo,
    ) -> Self {
        ArchiveTimeStamp {
            digest_algorithm: Some(digest.algorithm_identifier()),
            attributes: None,
            reduced_hashtree: (!reduced.is_empty()).then(|| {
                reduced
                    .into_iter()
                    .map(|list| list.into_iter().map(OctetString::from).collect())
                    .collect()
            }),
            time_stamp,
        }
    }

    /// DER of the `timeStamp` field: what a timestamp renewal covers.
    pub fn time_stamp_der(&self) -> Result<Vec<u8>, ErsBuildError> {
        rasn::der::encode(&self.time_stamp).map_err(|e| ErsBuildError::Encode(e.to_string()))
    }
}

/// An evidence record of `chains`, its `digestAlgorithms` listing each chain's algorithm
/// once, in order of first use.
pub fn evidence_record(chains: ArchiveTimeStampSequence) -> EvidenceRecord {
    let mut digests: Vec<AlgorithmIdentifier> = Vec::new();
    for ats in chains.iter().flatten() {
        if let Some(d) = &ats.digest_algorithm {
            if !digests.iter().any(|x| x.algorithm == d.algorithm) {
                digests.push(d.clone());
            }
        }
    }
    EvidenceRecord {
        version: Integer::ONE,
        digest_algorithms: digests,
        crypto_infos: None,
        encryption_info: None,
        archive_time_stamp_sequence: chains,
    }
}

/// The leaves of a timestamp renewal of `chain` (DESIGN §3): the hashes of the `timeStamp` of
/// every archive timestamp of the chain, to be put together in the first partial hash tree
/// (RFC 4998 requires the last one; Bouncy Castle 1.72 requires all).
pub fn timestamp_renewal_hashes(
    digest: DigestAlgorithm,
    chain: &ArchiveTimeStampChain,
) -> Result<Vec<Vec<u8>>, ErsBuildError> {
    chain
        .iter()
        .map(|ats| Ok(digest.digest(&ats.time_stamp_der()?)))
        .collect()
}

/// The leaf of one data object in a hash-tree renewal with the new algorithm `digest`
/// (RFC 4998 §5.2): `H'(H'(data) ‖ H'(DER of the ArchiveTimeStampSequence so far))`, data hash
/// first.
pub fn hash_tree_renewal_leaf(
    digest: DigestAlgorithm,
    data_hash: &[u8],
    sequence_so_far: &ArchiveTimeStampSequence,
) -> Result<Vec<u8>, ErsBuildError> {
    let seq =
        rasn::der::encode(sequence_so_far).map_err(|e| ErsBuildError::Encode(e.to_string()))?;
    let h_seq = digest.digest(&seq);
    Ok(digest.digest(&[data_hash, h_seq.as_slice()].concat()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IMPLICIT tags: digestAlgorithm [0] is A0 (constructed), reducedHashtree [2] is A2.
    #[test]
    fn archive_time_stamp_tags_are_implicit() {
        let ats = ArchiveTimeStamp {
            digest_algorithm: Some(AlgorithmIdentifier {
                algorithm: hozon_tsa::asn1::ID_SHA256.to_owned(),
                parameters: None,
            }),
            attributes: None,
            reduced_hashtree: Some(vec![vec![
                OctetString::from(vec![1u8; 32]),
                OctetString::from(vec![2u8; 32]),
            ]]),
            time_stamp: ContentInfo {
                content_type: hozon_tsa::asn1::ID_SIGNED_DATA.to_owned(),
                content: Any::new(vec![0x30, 0x00]),
            },
        };
        let der = rasn::der::encode(&ats).unwrap();
        // SEQUENCE { [0] { OID sha256 } ...
        assert_eq!(&der[2..6], &[0xa0, 0x0b, 0x06, 0x09]);
        let rht = der.iter().position(|&b| b == 0xa2).unwrap();
        assert_eq!(
            der[rht + 2],
            0x30,
            "PartialHashtree is a SEQUENCE inside [2]"
        );
        let back: ArchiveTimeStamp = rasn::der::decode(&der).unwrap();
        assert_eq!(back, ats);
    }
}
