//! FHIR R4 document Bundles in the shape of the JP e-prescription (JP_Bundle_ePrescriptionData)
//! and the JP-CLINS eReferral (診療情報提供書), with plausible but invented content, and the
//! `Bundle.signature` element of DESIGN §3.
//!
//! Codes for drugs, dosage timings and institutions are fixture values in the real code
//! systems' shapes, not real codes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use rand_chacha03::rand_core::RngCore;
use rand_chacha03::ChaCha20Rng;
use serde_json::{json, Value};

use hozon_verifier::hpki::{DocumentType, LOINC_SYSTEM};

use crate::pki::SignerProfile;

/// `Bundle.signature.targetFormat`: what the signature covers, the RFC 8785 (JCS)
/// canonical JSON of the Bundle without its `signature` element.
pub const TARGET_FORMAT: &str = "application/fhir+json;canonicalization=urn:ietf:rfc:8785";
/// `Bundle.signature.sigFormat` of a JWS signature.
pub const SIG_FORMAT_JOSE: &str = "application/jose";
/// `Bundle.signature.sigFormat` of a detached CMS signature.
pub const SIG_FORMAT_CMS: &str = "application/pkcs7-signature";
/// `Bundle.signature.type`: ASTM E1762 "Author's Signature".
pub const SIGNATURE_TYPE_CODE: &str = "1.2.840.10065.1.12.1.1";

/// The bytes a document's signature covers: JCS of `bundle` without `signature`.
pub fn signed_bytes(bundle: &Value) -> Vec<u8> {
    hozon_verifier::document::signed_bytes(bundle)
}

/// Sets `Bundle.signature` (replacing any).
pub fn attach_signature(
    bundle: &mut Value,
    sig_format: &str,
    data: &[u8],
    when: DateTime<FixedOffset>,
    who: &str,
) {
    attach_signature_data(
        bundle,
        sig_format,
        Value::String(STANDARD.encode(data)),
        when,
        who,
    );
}

/// Sets `Bundle.signature` with `data` written as given (for malformed-data fixtures).
pub fn attach_signature_data(
    bundle: &mut Value,
    sig_format: &str,
    data: Value,
    when: DateTime<FixedOffset>,
    who: &str,
) {
    if let Some(obj) = bundle.as_object_mut() {
        obj.insert(
            "signature".into(),
            json!({
                "type": [{
                    "system": "urn:iso-astm:E1762-95:2013",
                    "code": SIGNATURE_TYPE_CODE,
                    "display": "Author's Signature"
                }],
                "when": fhir_instant(when),
                "who": {"reference": who},
                "targetFormat": TARGET_FORMAT,
                "sigFormat": sig_format,
                "data": data
            }),
        );
    }
}

/// JST, the offset Japanese systems write.
pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

fn fhir_instant(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn pick<'a, T>(rng: &mut ChaCha20Rng, items: &'a [T]) -> &'a T {
    &items[(rng.next_u32() as usize) % items.len()]
}

fn below(rng: &mut ChaCha20Rng, n: u32) -> u32 {
    rng.next_u32() % n
}

/// A version-4-shaped UUID from `rng`.
pub fn uuid(rng: &mut ChaCha20Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (HOT-like code, name, unit, dose per intake, intakes per day, timing text).
const DRUGS: &[(&str, &str, &str, u32, u32, &str)] = &[
    ("110626901", "アムロジピン錠5mg", "錠", 1, 1, "1日1回朝食後"),
    (
        "114906501",
        "ロキソプロフェンナトリウム錠60mg",
        "錠",
        1,
        3,
        "1日3回毎食後",
    ),
    ("109017401", "レバミピド錠100mg", "錠", 1, 3, "1日3回毎食後"),
    (
        "103835401",
        "カルボシステイン錠250mg",
        "錠",
        2,
        3,
        "1日3回毎食後",
    ),
    (
        "112927601",
        "メトホルミン塩酸塩錠250mg",
        "錠",
        1,
        2,
        "1日2回朝夕食後",
    ),
    (
        "116013201",
        "ロスバスタチン錠2.5mg",
        "錠",
        1,
        1,
        "1日1回夕食後",
    ),
    (
        "120251401",
        "アセトアミノフェン錠200mg",
        "錠",
        2,
        3,
        "1日3回毎食後",
    ),
    (
        "111420701",
        "ランソプラゾールOD錠15mg",
        "錠",
        1,
        1,
        "1日1回朝食後",
    ),
    (
        "105271807",
        "酸化マグネシウム錠330mg",
        "錠",
        2,
        3,
        "1日3回毎食後",
    ),
    (
        "108352701",
        "モンテルカスト錠10mg",
        "錠",
        1,
        1,
        "1日1回就寝前",
    ),
    (
        "117546001",
        "フェキソフェナジン塩酸塩錠60mg",
        "錠",
        1,
        2,
        "1日2回朝夕食後",
    ),
    (
        "113291301",
        "カンデサルタン錠8mg",
        "錠",
        1,
        1,
        "1日1回朝食後",
    ),
    (
        "119284501",
        "シタグリプチン錠50mg",
        "錠",
        1,
        1,
        "1日1回朝食後",
    ),
    (
        "104785601",
        "ゾルピデム酒石酸塩錠5mg",
        "錠",
        1,
        1,
        "1日1回就寝前",
    ),
    (
        "121540201",
        "エドキサバン錠30mg",
        "錠",
        1,
        1,
        "1日1回朝食後",
    ),
    (
        "102997701",
        "アムブロキソール塩酸塩錠15mg",
        "錠",
        1,
        3,
        "1日3回毎食後",
    ),
    (
        "115643601",
        "クラリスロマイシン錠200mg",
        "錠",
        1,
        2,
        "1日2回朝夕食後",
    ),
    (
        "118390901",
        "ビソプロロールフマル酸塩錠2.5mg",
        "錠",
        1,
        1,
        "1日1回朝食後",
    ),
];

const FAMILY: &[(&str, &str)] = &[
    ("東京", "トウキョウ"),
    ("大阪", "オオサカ"),
    ("森", "モリ"),
    ("林", "ハヤシ"),
    ("清水", "シミズ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("斎藤", "サイトウ"),
];

const GIVEN: &[(&str, &str, &str)] = &[
    ("太郎", "タロウ", "male"),
    ("次郎", "ジロウ", "male"),
    ("翔", "ショウ", "male"),
    ("大輔", "ダイスケ", "male"),
    ("花子", "ハナコ", "female"),
    ("陽子", "ヨウコ", "female"),
    ("さくら", "サクラ", "female"),
    ("美穂", "ミホ", "female"),
];

const PROBLEMS: &[(&str, &str)] = &[
    ("I10", "本態性高血圧症"),
    ("E119", "2型糖尿病・合併症なし"),
    ("J189", "肺炎、詳細不明"),
    ("K219", "胃食道逆流症"),
    ("M545", "腰痛症"),
    ("I489", "心房細動"),
    ("E785", "脂質異常症"),
    ("J45", "気管支喘息"),
];

const PURPOSES: &[&str] = &[
    "精査加療をお願いいたします。",
    "専門的治療のため御紹介いたします。",
    "手術適応の御判断をお願いいたします。",
    "今後の外来での経過観察をお願いいたします。",
];

const ADDRESSES: &[(&str, &str)] = &[
    ("1000001", "東京都千代田区千代田1-1"),
    ("5300001", "大阪府大阪市北区梅田3-1-1"),
    ("4600001", "愛知県名古屋市中区三の丸3-1-2"),
    ("8100001", "福岡県福岡市中央区天神1-8-1"),
];

fn split_name(full: &str) -> (&str, &str) {
    full.split_once(' ').unwrap_or((full, ""))
}

fn human_name(text: &str, kana: &str) -> Value {
    let (f, g) = split_name(text);
    let (fk, gk) = split_name(kana);
    json!([
        {
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}],
            "use": "official", "text": text, "family": f, "given": [g]
        },
        {
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "SYL"}],
            "use": "official", "text": kana, "family": fk, "given": [gk]
        }
    ])
}

/// One generated document before signing.
#[derive(Clone, Debug)]
pub struct Document {
    /// The Bundle (without `signature`).
    pub bundle: Value,
    /// `Bundle.id`.
    pub id: String,
    /// The Practitioner's `urn:uuid:` reference (for `signature.who`).
    pub author_ref: String,
}

/// Generates a document of `doc_type` written by `author` at `time`.
pub fn document(
    rng: &mut ChaCha20Rng,
    doc_type: DocumentType,
    author: &SignerProfile,
    time: DateTime<Utc>,
) -> Document {
    let local = time.with_timezone(&jst());
    let bundle_id = uuid(rng);
    let composition_id = uuid(rng);
    let patient_id = uuid(rng);
    let practitioner_id = uuid(rng);
    let organization_id = uuid(rng);

    let (family, family_kana) = *pick(rng, FAMILY);
    let (given, given_kana, gender) = *pick(rng, GIVEN);
    let birth = format!(
        "{}-{:02}-{:02}",
        1935 + below(rng, 70),
        1 + below(rng, 12),
        1 + below(rng, 28)
    );
    let (postal, address) = *pick(rng, ADDRESSES);
    let patient_no = format!("{:08}", below(rng, 100_000_000));

    let patient = json!({
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{
            "system": format!("urn:oid:1.2.392.100495.20.3.51.1{}", author.institution_code),
            "value": patient_no
        }],
        "name": human_name(&format!("{family} {given}"), &format!("{family_kana} {given_kana}")),
        "gender": gender,
        "birthDate": birth,
        "address": [{"text": address, "postalCode": postal, "country": "JP"}]
    });
    let practitioner = json!({
        "resourceType": "Practitioner",
        "id": practitioner_id,
        "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.31", "value": author.license}],
        "name": human_name(&author.name, &author.kana)
    });
    let organization = json!({
        "resourceType": "Organization",
        "id": organization_id,
        "identifier": [{
            "system": "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no",
            "value": author.institution_code
        }],
        "name": author.organization,
        "telecom": [{"system": "phone", "value": format!("03-{:04}-{:04}", below(rng, 10000), below(rng, 10000))}],
        "address": [{"text": pick(rng, ADDRESSES).1, "country": "JP"}]
    });

    let mut entries = vec![
        (composition_id.clone(), Value::Null),
        (patient_id.clone(), patient),
        (practitioner_id.clone(), practitioner),
        (organization_id.clone(), organization),
    ];
    let subject = json!({"reference": format!("urn:uuid:{patient_id}")});
    let requester = json!({"reference": format!("urn:uuid:{practitioner_id}")});

    let sections = match doc_type {
        DocumentType::Prescription => {
            let count = 1 + below(rng, 4) as usize;
            let days = *pick(rng, &[3u32, 5, 7, 14, 28, 30]);
            let mut refs = Vec::new();
            for n in 0..count {
                let (code, name, unit, dose, times, timing) = *pick(rng, DRUGS);
                let id = uuid(rng);
                refs.push(json!({"reference": format!("urn:uuid:{id}")}));
                entries.push((id.clone(), json!({
                    "resourceType": "MedicationRequest",
                    "id": id,
                    "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.81", "value": (n + 1).to_string()}],
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": "urn:oid:1.2.392.200119.4.403.1", "code": code, "display": name}],
                        "text": name
                    },
                    "subject": subject,
                    "authoredOn": local.format("%Y-%m-%d").to_string(),
                    "requester": requester,
                    "dosageInstruction": [{
                        "text": format!("{timing} 1回{dose}{unit}"),
                        "timing": {"code": {"text": timing}},
                        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]
                    }],
                    "dispenseRequest": {
                        "quantity": {"value": dose * times * days, "unit": unit},
                        "expectedSupplyDuration": {"value": days, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d"}
                    }
                })));
            }
            json!([{
                "title": "処方情報",
                "code": {"coding": [{"system": "http://jpfhir.jp/fhir/ePrescription/CodeSystem/document-section", "code": "01", "display": "処方情報セクション"}]},
                "entry": refs
            }])
        }
        DocumentType::Referral | DocumentType::DischargeSummary => {
            let count = 1 + below(rng, 3) as usize;
            let mut refs = Vec::new();
            let mut names = Vec::new();
            for _ in 0..count {
                let (icd, label) = *pick(rng, PROBLEMS);
                let id = uuid(rng);
                refs.push(json!({"reference": format!("urn:uuid:{id}")}));
                names.push(label);
                entries.push((id.clone(), json!({
                    "resourceType": "Condition",
                    "id": id,
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                    "code": {"coding": [{"system": "http://jpfhir.jp/fhir/core/CodeSystem/JP_ICD10", "code": icd, "display": label}], "text": label},
                    "subject": subject,
                    "recordedDate": local.format("%Y-%m-%d").to_string()
                })));
            }
            let purpose = *pick(rng, PURPOSES);
            let narrative = |t: &str| json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{t}</div>")});
            json!([
                {
                    "title": "紹介目的",
                    "code": {"coding": [{"system": "http://jpfhir.jp/fhir/eReferral/CodeSystem/document-section", "code": "950", "display": "紹介目的セクション"}]},
                    "text": narrative(&format!("{}について、{purpose}", names.join("、")))
                },
                {
                    "title": "傷病名・主訴",
                    "code": {"coding": [{"system": "http://jpfhir.jp/fhir/eReferral/CodeSystem/document-section", "code": "340", "display": "傷病名・主訴セクション"}]},
                    "entry": refs
                },
                {
                    "title": "現病歴",
                    "code": {"coding": [{"system": "http://jpfhir.jp/fhir/eReferral/CodeSystem/document-section", "code": "360", "display": "現病歴セクション"}]},
                    "text": narrative(&format!("{}年頃より当院通院中。最近症状の増悪を認めます。", 2010 + below(rng, 12)))
                }
            ])
        }
    };

    let composition = json!({
        "resourceType": "Composition",
        "id": composition_id,
        "meta": {"profile": [match doc_type {
            DocumentType::Prescription => "http://jpfhir.jp/fhir/ePrescription/StructureDefinition/JP_Composition_ePrescriptionData",
            DocumentType::Referral => "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Composition_eReferral",
            DocumentType::DischargeSummary => "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Composition_eDischargeSummary",
        }]},
        "extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/composition-clinicaldocument-versionNumber",
            "valueString": "1.0"
        }],
        "identifier": {
            "system": "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier",
            "value": format!("{}-{}-{:08}", author.institution_code, local.format("%Y"), below(rng, 100_000_000))
        },
        "status": "final",
        "type": {"coding": [{"system": LOINC_SYSTEM, "code": doc_type.loinc(), "display": doc_type.display()}]},
        "subject": subject,
        "date": fhir_instant(local),
        "author": [requester, {"reference": format!("urn:uuid:{organization_id}")}],
        "title": doc_type.display(),
        "custodian": {"reference": format!("urn:uuid:{organization_id}")},
        "section": sections
    });
    entries[0].1 = composition;

    let bundle = json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {
            "lastUpdated": fhir_instant(local - Duration::minutes(2)),
            "profile": [match doc_type {
                DocumentType::Prescription => "http://jpfhir.jp/fhir/ePrescription/StructureDefinition/JP_Bundle_ePrescriptionData",
                DocumentType::Referral => "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Bundle_eReferral",
                DocumentType::DischargeSummary => "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Bundle_eDischargeSummary",
            }]
        },
        "identifier": {
            "system": "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier",
            "value": format!("{}^{}", author.institution_code, hex(&bundle_id.as_bytes()[..6]))
        },
        "type": "document",
        "timestamp": fhir_instant(local - Duration::minutes(1)),
        "entry": entries.into_iter().map(|(id, resource)| json!({
            "fullUrl": format!("urn:uuid:{id}"),
            "resource": resource
        })).collect::<Vec<_>>()
    });
    Document {
        id: bundle_id,
        bundle,
        author_ref: format!("urn:uuid:{practitioner_id}"),
    }
}
