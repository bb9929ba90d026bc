//! The vocabulary of Japan's health PKI (HPKI) that both the verifier and the development
//! fixtures speak: policy OIDs, the ISO 17090 `hcRole` attribute, the kinds of signer
//! certificate and the document types whose signing they may be restricted to.
//!
//! The policy OIDs of the *test* hierarchy (`hozon dev pki`) are look-alikes: the HPKI arc
//! 1.2.392.100495.1.5 for IC-card signatures, and an OID under the documentation arc
//! 1.3.6.1.4.1.32473 (RFC 5612) marking the remote-signature ("second") certificates. A
//! deployment configures the real OIDs; nothing here is a real HPKI key or certificate.

use rasn::prelude::*;

/// `id-hcpki-at-healthcareactor` (ISO 17090-3): the `hcRole` attribute carried in a
/// certificate's subjectDirectoryAttributes.
///
/// ```asn1
/// id-hcpki-at-healthcareactor OBJECT IDENTIFIER ::=
///     { iso(1) healthcare-pki(0) 17090 attribute(0) hcActor(1) }
/// ```
pub const ID_HCPKI_AT_HEALTHCARE_ACTOR: &Oid = Oid::const_new(&[1, 0, 17090, 0, 1]);

/// The coding scheme of HPKI's national qualifications ("Medical Doctor", "Pharmacist", …):
/// `{ iso(1) member-body(2) jp(392) mhlw(100495) jhpki(1) hcRole(6)
/// national-coding-scheme-reference(2) version(1) }`.
pub const ID_HPKI_HCROLE_NATIONAL: &Oid = Oid::const_new(&[1, 2, 392, 100495, 1, 6, 2, 1]);

/// The HPKI certificate-policy arc; every HPKI signer certificate carries a (critical)
/// policy under it.
pub const HPKI_POLICY_ARC: &[u32] = &[1, 2, 392, 100495, 1, 5];

/// Policy of the test hierarchy's signature certificates (IC card and remote alike):
/// 1.2.392.100495.1.5.1.1.
pub const TEST_HPKI_SIGNATURE_POLICY: &Oid = Oid::const_new(&[1, 2, 392, 100495, 1, 5, 1, 1]);

/// Policy marking the test hierarchy's remote-signature ("second") certificates, whose keys
/// a remote signing service holds: 1.3.6.1.4.1.32473.17090.2.
pub const TEST_REMOTE_SIGNATURE_POLICY: &Oid = Oid::const_new(&[1, 3, 6, 1, 4, 1, 32473, 17090, 2]);

/// `id-ce-subjectDirectoryAttributes` (RFC 5280 §4.2.1.8).
pub const ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES: &Oid = Oid::const_new(&[2, 5, 29, 9]);
/// `id-ce-certificatePolicies` (RFC 5280 §4.2.1.4).
pub const ID_CE_CERTIFICATE_POLICIES: &Oid = Oid::const_new(&[2, 5, 29, 32]);

/// ISO 17090-3 `HCActorData`, the value of the `hcRole` attribute.
///
/// ```asn1
/// hcRole ATTRIBUTE ::= { WITH SYNTAX HCActorData ID id-hcpki-at-healthcareactor }
/// HCActorData ::= SET OF HCActor
/// ```
pub type HcActorData = SetOf<HcActor>;

/// ISO 17090-3 `HCActor` (EXPLICIT tags, as HPKI certificates encode it).
///
/// ```asn1
/// HCActor ::= SEQUENCE {
///     codedData           [0] CodedData OPTIONAL,
///     regionalHCActorData [1] SEQUENCE OF RegionalData OPTIONAL }
/// ```
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Hash)]
pub struct HcActor {
    /// The qualification as a code of a coding scheme.
    #[rasn(tag(explicit(0)))]
    pub coded_data: Option<CodedData>,
    /// The qualification's name per country.
    #[rasn(tag(explicit(1)))]
    pub regional_hc_actor_data: Option<Vec<RegionalData>>,
}

/// ISO 17090-3 `CodedData`.
///
/// ```asn1
/// CodedData ::= SET {
///     codingSchemeReference [0] OBJECT IDENTIFIER,
///     codeDataValue         [1] UTF8String,
///     codeDataFreeText      [2] DirectoryString OPTIONAL }
/// ```
/// (`codeDataFreeText` is not modelled; HPKI certificates do not carry it.)
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Hash)]
#[rasn(set)]
pub struct CodedData {
    /// The coding scheme, for HPKI [`ID_HPKI_HCROLE_NATIONAL`].
    #[rasn(tag(explicit(0)))]
    pub coding_scheme_reference: ObjectIdentifier,
    /// The code, for HPKI the qualification's English name ("Medical Doctor").
    #[rasn(tag(explicit(1)))]
    pub code_data_value: Utf8String,
}

/// ISO 17090-3 `RegionalData`.
///
/// ```asn1
/// RegionalData ::= SEQUENCE {
///     country             PrintableString (SIZE(2)),
///     regionalHCActorName SEQUENCE OF UTF8String }
/// ```
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Hash)]
pub struct RegionalData {
    /// ISO 3166 country code.
    pub country: rasn::types::PrintableString,
    /// The qualification's names in that country ("医師").
    pub regional_hc_actor_name: Vec<Utf8String>,
}

/// A qualification HPKI certifies, as written in `codeDataValue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HcRole {
    /// "Medical Doctor" (医師).
    MedicalDoctor,
    /// "Dentist" (歯科医師).
    Dentist,
    /// "Pharmacist" (薬剤師).
    Pharmacist,
}

impl HcRole {
    /// The `codeDataValue` of the role.
    pub fn code(self) -> &'static str {
        match self {
            HcRole::MedicalDoctor => "Medical Doctor",
            HcRole::Dentist => "Dentist",
            HcRole::Pharmacist => "Pharmacist",
        }
    }

    /// The role's Japanese name, as in `regionalHCActorName`.
    pub fn japanese(self) -> &'static str {
        match self {
            HcRole::MedicalDoctor => "医師",
            HcRole::Dentist => "歯科医師",
            HcRole::Pharmacist => "薬剤師",
        }
    }

    /// The role whose `codeDataValue` is `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        [HcRole::MedicalDoctor, HcRole::Dentist, HcRole::Pharmacist]
            .into_iter()
            .find(|r| r.code() == code)
    }

    /// The `HCActorData` of this role as HPKI writes it: coded data in the national scheme
    /// and the Japanese name for country JP.
    pub fn actor_data(self) -> HcActorData {
        SetOf::from_vec(vec![HcActor {
            coded_data: Some(CodedData {
                coding_scheme_reference: ID_HPKI_HCROLE_NATIONAL.to_owned(),
                code_data_value: self.code().to_owned(),
            }),
            regional_hc_actor_data: Some(vec![RegionalData {
                // "JP" is two printable characters; the conversion cannot fail.
                country: rasn::types::PrintableString::from_bytes(b"JP")
                    .expect("JP is a PrintableString"),
                regional_hc_actor_name: vec![self.japanese().to_owned()],
            }]),
        }])
    }
}

/// How a signer's key is held, which decides what it may sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// The key is on the professional's HPKI IC card.
    Card,
    /// The key is held by a remote signing service (the HPKI "second certificate").
    Remote,
}

impl CertificateKind {
    /// `"card"` or `"remote"`, as in manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Card => "card",
            CertificateKind::Remote => "remote",
        }
    }
}

/// Document types, by the LOINC code of `Composition.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocumentType {
    /// 処方箋: LOINC 57833-6 "Prescription for medication".
    Prescription,
    /// 診療情報提供書: LOINC 57133-1 "Referral note".
    Referral,
    /// 退院時サマリー: LOINC 18842-5 "Discharge summary".
    DischargeSummary,
}

impl DocumentType {
    /// Every type this crate knows.
    pub const ALL: [DocumentType; 3] = [
        DocumentType::Prescription,
        DocumentType::Referral,
        DocumentType::DischargeSummary,
    ];

    /// The LOINC code written in `Composition.type.coding.code`.
    pub fn loinc(self) -> &'static str {
        match self {
            DocumentType::Prescription => "57833-6",
            DocumentType::Referral => "57133-1",
            DocumentType::DischargeSummary => "18842-5",
        }
    }

    /// The display text (Japanese), as JP Core writes it.
    pub fn display(self) -> &'static str {
        match self {
            DocumentType::Prescription => "処方箋",
            DocumentType::Referral => "診療情報提供書",
            DocumentType::DischargeSummary => "退院時サマリー",
        }
    }

    /// A short stable name for manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::Prescription => "prescription",
            DocumentType::Referral => "referral",
            DocumentType::DischargeSummary => "discharge-summary",
        }
    }

    /// The type whose LOINC code is `code`.
    pub fn from_loinc(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.loinc() == code)
    }
}

/// The LOINC code system URI used in `Composition.type`.
pub const LOINC_SYSTEM: &str = "http://loinc.org";

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER of a doctor's HCActorData, checked by hand against ISO 17090-3 with EXPLICIT
    /// tags: SET { SEQUENCE { [0] { SET { [0] { OID } [1] { UTF8String } } } [1] { … } } }.
    #[test]
    fn hc_actor_round_trip() {
        let data = HcRole::MedicalDoctor.actor_data();
        let der = rasn::der::encode(&data).unwrap();
        assert_eq!(der[0], 0x31, "HCActorData is a SET OF");
        assert_eq!(der[2], 0x30, "HCActor is a SEQUENCE");
        assert_eq!(der[4], 0xa0, "codedData is [0] EXPLICIT");
        assert_eq!(der[6], 0x31, "CodedData is a SET");
        let back: HcActorData = rasn::der::decode(&der).unwrap();
        assert_eq!(back, data);
        let coded = back.to_vec()[0].coded_data.clone().unwrap();
        assert_eq!(
            HcRole::from_code(&coded.code_data_value),
            Some(HcRole::MedicalDoctor)
        );
    }

    #[test]
    fn document_types() {
        for t in DocumentType::ALL {
            assert_eq!(DocumentType::from_loinc(t.loinc()), Some(t));
        }
        assert_eq!(DocumentType::from_loinc("11488-4"), None);
    }
}
