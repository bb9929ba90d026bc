//! A look-alike HPKI hierarchy, deterministic from a seed (`hozon dev pki`).
//!
//! ```text
//! Test HPKI Root CA V2 (RSA-4096, sha256, 2009–2049)
//! ├── Test HPKI Signing CA (SHA-1)     (RSA-2048, sha1,   2010–2020)  legacy-doctor-01/02
//! ├── Test HPKI Signing CA G2          (RSA-2048, sha256, 2014–2034)  doctor-01..03, pharmacist-01,
//! │                                                                   doctor-revoked, doctor-expired
//! └── Test HPKI Remote Signature CA    (RSA-2048, sha256, 2020–2035)  remote-doctor-01/02
//! Test TSA Root CA (RSA-3072, sha256, 2012–2042)
//! ├── Test TSA 1  (RSA-2048, 2014–2036)
//! ├── Test TSA 2  (RSA-2048, 2024–2027-06-30: expires early, to exercise timestamp renewal)
//! └── Test TSA 3  (RSA-3072, 2026–2040: what renewals move to when RSA-2048 is retired)
//! ```
//!
//! Every date is fixed (not taken from the clock), so a seed gives the same bytes on every
//! machine and every day. Signer certificates are RSA-2048 with a critical nonRepudiation key
//! usage, a critical certificate policy under the HPKI arc (remote-signature certificates
//! carry [`TEST_REMOTE_SIGNATURE_POLICY`] as well), the hcRole and Japanese UTF8String names.
//! `doctor-revoked` is on the G2 CA's CRL from 2025-06-30 (affiliationChanged).
//!
//! On disk ([`TestPki::write`], [`TestPki::load`]):
//! ```text
//! DIR/pki.json          index: every entity, its role, validity, files; the seed
//! DIR/trust/*.pem       the two roots (what a verifier is given with --trust)
//! DIR/certs/ID.pem      every certificate
//! DIR/keys/ID.key.pem   every private key, unencrypted PKCS#8 (fixtures only!)
//! DIR/crl/ID.crl.pem    the CRL of each CA
//! ```

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rand_chacha03::rand_core::{RngCore, SeedableRng};
use rand_chacha03::ChaCha20Rng;
use rasn::types::Oid;
use rasn_pkix::Name;
use serde::{Deserialize, Serialize};

use hozon_tsa::signer::CertifiedSigner;
use hozon_tsa::software::SoftwareSigner;
use hozon_verifier::hpki::{
    CertificateKind, HcRole, TEST_HPKI_SIGNATURE_POLICY, TEST_REMOTE_SIGNATURE_POLICY,
};

use crate::x509::{
    self, ext, issue_certificate, issue_crl, key_usage, CertSpec, CrlSpec, Issuer, Key, NameString,
    Revocation, SigAlg, ID_AT_COMMON_NAME, ID_AT_COUNTRY, ID_AT_ORGANIZATION,
    ID_AT_ORGANIZATIONAL_UNIT,
};
use crate::DevkitError;

/// What an entity of the hierarchy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A self-signed trust anchor.
    Root,
    /// A CA under a root.
    IssuingCa,
    /// A doctor's or pharmacist's signature certificate.
    Signer,
    /// A time-stamping authority.
    Tsa,
}

/// What a signer certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerProfile {
    /// The qualification in the hcRole attribute.
    #[serde(with = "role_serde")]
    pub hc_role: HcRole,
    /// IC card or remote signature.
    #[serde(with = "kind_serde")]
    pub kind: CertificateKind,
    /// The holder's name (Japanese, as in the certificate's CN).
    pub name: String,
    /// The holder's name in katakana.
    pub kana: String,
    /// Registration number (医籍登録番号 / 薬剤師名簿登録番号).
    pub license: String,
    /// The medical institution (certificate O, FHIR Organization).
    pub organization: String,
    /// The institution's 10-digit medical institution code (医療機関コード).
    pub institution_code: String,
    /// When the certificate was revoked, if it was.
    pub revoked: Option<DateTime<Utc>>,
}

/// One certificate of the hierarchy with its key.
#[derive(Clone, Debug)]
pub struct Entity {
    /// Short stable name, also the file stem ("doctor-01").
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The certificate's common name.
    pub common_name: String,
    /// The issuing entity's id (itself for a root).
    pub issuer: String,
    /// Algorithm this entity signs with (certificates, CRLs, documents).
    pub alg: SigAlg,
    /// Validity.
    pub not_before: DateTime<Utc>,
    /// Validity.
    pub not_after: DateTime<Utc>,
    /// For signers: who holds the key.
    pub signer: Option<SignerProfile>,
    /// The key.
    pub key: Key,
    /// The certificate, DER.
    pub cert: Vec<u8>,
}

/// A CA's CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    /// The issuing CA's id.
    pub issuer: String,
    /// DER `CertificateList`.
    pub der: Vec<u8>,
}

/// The whole hierarchy, in memory.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The seed it was generated from.
    pub seed: u64,
    /// Every entity, issuers before what they issued.
    pub entities: Vec<Entity>,
    /// One CRL per CA.
    pub crls: Vec<Crl>,
}

fn date(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

fn end_of(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// The revocation date of `doctor-revoked`.
pub fn revocation_date() -> DateTime<Utc> {
    date(2025, 6, 30)
}

struct CaPlan {
    id: &'static str,
    cn: &'static str,
    issuer: &'static str,
    bits: usize,
    /// Algorithm the issuer signs this certificate with.
    signed_with: SigAlg,
    /// Algorithm this CA signs with.
    alg: SigAlg,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    policies: &'static [&'static Oid],
}

struct SignerPlan {
    id: &'static str,
    issuer: &'static str,
    role: HcRole,
    name: &'static str,
    kana: &'static str,
    org: &'static str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    revoked: Option<DateTime<Utc>>,
}

fn ca_plans() -> Vec<CaPlan> {
    vec![
        CaPlan {
            id: "root",
            cn: "Test HPKI Root CA V2",
            issuer: "root",
            bits: 4096,
            signed_with: SigAlg::Sha256Rsa,
            alg: SigAlg::Sha256Rsa,
            from: date(2009, 1, 1),
            to: end_of(2049, 12, 31),
            policies: &[],
        },
        CaPlan {
            id: "ca-sha1",
            cn: "Test HPKI Signing CA (SHA-1)",
            issuer: "root",
            bits: 2048,
            signed_with: SigAlg::Sha1Rsa,
            alg: SigAlg::Sha1Rsa,
            from: date(2010, 1, 1),
            to: end_of(2020, 12, 31),
            policies: &[TEST_HPKI_SIGNATURE_POLICY],
        },
        CaPlan {
            id: "ca-sha256",
            cn: "Test HPKI Signing CA G2",
            issuer: "root",
            bits: 2048,
            signed_with: SigAlg::Sha256Rsa,
            alg: SigAlg::Sha256Rsa,
            from: date(2014, 1, 1),
            to: end_of(2034, 12, 31),
            policies: &[TEST_HPKI_SIGNATURE_POLICY],
        },
        CaPlan {
            id: "ca-remote",
            cn: "Test HPKI Remote Signature CA",
            issuer: "root",
            bits: 2048,
            signed_with: SigAlg::Sha256Rsa,
            alg: SigAlg::Sha256Rsa,
            from: date(2020, 4, 1),
            to: end_of(2035, 3, 31),
            policies: &[TEST_HPKI_SIGNATURE_POLICY, TEST_REMOTE_SIGNATURE_POLICY],
        },
        CaPlan {
            id: "tsa-root",
            cn: "Test TSA Root CA",
            issuer: "tsa-root",
            bits: 3072,
            signed_with: SigAlg::Sha256Rsa,
            alg: SigAlg::Sha256Rsa,
            from: date(2012, 1, 1),
            to: end_of(2042, 12, 31),
            policies: &[],
        },
    ]
}

const HOSPITAL: &str = "テスト記念病院";
const CLINIC: &str = "さくら内科クリニック";
const PHARMACY: &str = "みどり調剤薬局";

fn signer_plans() -> Vec<SignerPlan> {
    use HcRole::*;
    let s = |id, issuer, role, name, kana, org, from, to, revoked| SignerPlan {
        id,
        issuer,
        role,
        name,
        kana,
        org,
        from,
        to,
        revoked,
    };
    vec![
        s(
            "doctor-01",
            "ca-sha256",
            MedicalDoctor,
            "山田 太郎",
            "ヤマダ タロウ",
            HOSPITAL,
            date(2022, 4, 1),
            end_of(2027, 3, 31),
            None,
        ),
        s(
            "doctor-02",
            "ca-sha256",
            MedicalDoctor,
            "佐藤 花子",
            "サトウ ハナコ",
            HOSPITAL,
            date(2023, 1, 10),
            end_of(2028, 1, 9),
            None,
        ),
        s(
            "doctor-03",
            "ca-sha256",
            MedicalDoctor,
            "鈴木 一郎",
            "スズキ イチロウ",
            CLINIC,
            date(2022, 10, 1),
            end_of(2027, 9, 30),
            None,
        ),
        s(
            "doctor-revoked",
            "ca-sha256",
            MedicalDoctor,
            "高橋 健",
            "タカハシ ケン",
            CLINIC,
            date(2022, 4, 1),
            end_of(2027, 3, 31),
            Some(revocation_date()),
        ),
        s(
            "doctor-expired",
            "ca-sha256",
            MedicalDoctor,
            "田中 誠",
            "タナカ マコト",
            HOSPITAL,
            date(2016, 4, 1),
            end_of(2021, 3, 31),
            None,
        ),
        s(
            "pharmacist-01",
            "ca-sha256",
            Pharmacist,
            "伊藤 美咲",
            "イトウ ミサキ",
            PHARMACY,
            date(2022, 7, 1),
            end_of(2027, 6, 30),
            None,
        ),
        s(
            "remote-doctor-01",
            "ca-remote",
            MedicalDoctor,
            "渡辺 直樹",
            "ワタナベ ナオキ",
            HOSPITAL,
            date(2023, 4, 1),
            end_of(2028, 3, 31),
            None,
        ),
        s(
            "remote-doctor-02",
            "ca-remote",
            MedicalDoctor,
            "中村 由美",
            "ナカムラ ユミ",
            CLINIC,
            date(2023, 10, 1),
            end_of(2028, 9, 30),
            None,
        ),
        s(
            "legacy-doctor-01",
            "ca-sha1",
            MedicalDoctor,
            "小林 修",
            "コバヤシ オサム",
            HOSPITAL,
            date(2014, 4, 1),
            end_of(2019, 3, 31),
            None,
        ),
        s(
            "legacy-doctor-02",
            "ca-sha1",
            MedicalDoctor,
            "加藤 恵子",
            "カトウ ケイコ",
            CLINIC,
            date(2015, 4, 1),
            end_of(2020, 3, 31),
            None,
        ),
    ]
}

fn institution_code(org: &str) -> &'static str {
    match org {
        HOSPITAL => "1312345678",
        CLINIC => "1319876543",
        _ => "1345678901",
    }
}

fn serial(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut s = vec![0u8; 16];
    rng.fill_bytes(&mut s);
    s[0] = (s[0] & 0x3f) | 0x10;
    s
}

fn ca_name(cn: &str) -> Name {
    x509::name(&[
        (ID_AT_COUNTRY, NameString::Printable, "JP"),
        (ID_AT_ORGANIZATION, NameString::Utf8, "Test MHLW"),
        (ID_AT_COMMON_NAME, NameString::Utf8, cn),
    ])
}

impl TestPki {
    /// Generates the hierarchy from `seed`. Takes a few seconds (RSA key generation).
    pub fn generate(seed: u64) -> Result<TestPki, DevkitError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut entities: Vec<Entity> = Vec::new();
        let mut names: Vec<(String, Name)> = Vec::new();

        for plan in ca_plans() {
            let key = Key::generate(&mut rng, plan.bits)?;
            let subject = ca_name(plan.cn);
            let mut extensions = vec![
                ext::basic_constraints(true, (plan.issuer != plan.id).then_some(0))?,
                ext::key_usage(&[key_usage::KEY_CERT_SIGN, key_usage::CRL_SIGN]),
            ];
            if !plan.policies.is_empty() {
                extensions.push(ext::certificate_policies(plan.policies, false)?);
            }
            let spec = CertSpec {
                serial: serial(&mut rng),
                subject: subject.clone(),
                not_before: plan.from,
                not_after: plan.to,
                extensions,
            };
            let cert = if plan.issuer == plan.id {
                issue_certificate(
                    &spec,
                    &key,
                    Issuer {
                        name: &subject,
                        key: &key,
                        alg: plan.signed_with,
                    },
                )?
            } else {
                let parent = find(&entities, plan.issuer)?;
                let parent_name = lookup_name(&names, plan.issuer)?;
                issue_certificate(
                    &spec,
                    &key,
                    Issuer {
                        name: parent_name,
                        key: &parent.key,
                        alg: plan.signed_with,
                    },
                )?
            };
            names.push((plan.id.to_owned(), subject));
            entities.push(Entity {
                id: plan.id.to_owned(),
                role: if plan.issuer == plan.id {
                    Role::Root
                } else {
                    Role::IssuingCa
                },
                common_name: plan.cn.to_owned(),
                issuer: plan.issuer.to_owned(),
                alg: plan.alg,
                not_before: plan.from,
                not_after: plan.to,
                signer: None,
                key,
                cert,
            });
        }

        for (n, plan) in signer_plans().into_iter().enumerate() {
            let key = Key::generate(&mut rng, 2048)?;
            let kind = if plan.issuer == "ca-remote" {
                CertificateKind::Remote
            } else {
                CertificateKind::Card
            };
            let subject = x509::name(&[
                (ID_AT_COUNTRY, NameString::Printable, "JP"),
                (ID_AT_ORGANIZATION, NameString::Utf8, plan.org),
                (
                    ID_AT_ORGANIZATIONAL_UNIT,
                    NameString::Utf8,
                    plan.role.japanese(),
                ),
                (ID_AT_COMMON_NAME, NameString::Utf8, plan.name),
            ]);
            let policies: &[&Oid] = match kind {
                CertificateKind::Card => &[TEST_HPKI_SIGNATURE_POLICY],
                CertificateKind::Remote => {
                    &[TEST_HPKI_SIGNATURE_POLICY, TEST_REMOTE_SIGNATURE_POLICY]
                }
            };
            let spec = CertSpec {
                serial: serial(&mut rng),
                subject,
                not_before: plan.from,
                not_after: plan.to,
                extensions: vec![
                    ext::key_usage(&[key_usage::NON_REPUDIATION]),
                    ext::certificate_policies(policies, true)?,
                    ext::hc_role(plan.role)?,
                ],
            };
            let ca = find(&entities, plan.issuer)?;
            let cert = issue_certificate(
                &spec,
                &key,
                Issuer {
                    name: lookup_name(&names, plan.issuer)?,
                    key: &ca.key,
                    alg: ca.alg,
                },
            )?;
            let license = format!("{:06}", 300_000 + n * 7_919 % 200_000);
            entities.push(Entity {
                id: plan.id.to_owned(),
                role: Role::Signer,
                common_name: plan.name.to_owned(),
                issuer: plan.issuer.to_owned(),
                alg: ca.alg,
                not_before: plan.from,
                not_after: plan.to,
                signer: Some(SignerProfile {
                    hc_role: plan.role,
                    kind,
                    name: plan.name.to_owned(),
                    kana: plan.kana.to_owned(),
                    license,
                    organization: plan.org.to_owned(),
                    institution_code: institution_code(plan.org).to_owned(),
                    revoked: plan.revoked,
                }),
                key,
                cert,
            });
        }

        for (id, cn, from, to, bits) in [
            (
                "tsa-1",
                "Test TSA 1",
                date(2014, 1, 1),
                end_of(2036, 12, 31),
                2048,
            ),
            (
                "tsa-2",
                "Test TSA 2",
                date(2024, 1, 1),
                end_of(2027, 6, 30),
                2048,
            ),
            (
                "tsa-3",
                "Test TSA 3",
                date(2026, 1, 1),
                end_of(2040, 12, 31),
                3072,
            ),
        ] {
            let key = Key::generate(&mut rng, bits)?;
            let spec = CertSpec {
                serial: serial(&mut rng),
                subject: x509::name(&[
                    (ID_AT_COUNTRY, NameString::Printable, "JP"),
                    (
                        ID_AT_ORGANIZATION,
                        NameString::Utf8,
                        "Test Time-Stamping Service",
                    ),
                    (ID_AT_COMMON_NAME, NameString::Utf8, cn),
                ]),
                not_before: from,
                not_after: to,
                extensions: vec![
                    ext::key_usage(&[key_usage::DIGITAL_SIGNATURE, key_usage::NON_REPUDIATION]),
                    ext::time_stamping()?,
                ],
            };
            let ca = find(&entities, "tsa-root")?;
            let cert = issue_certificate(
                &spec,
                &key,
                Issuer {
                    name: lookup_name(&names, "tsa-root")?,
                    key: &ca.key,
                    alg: ca.alg,
                },
            )?;
            entities.push(Entity {
                id: id.to_owned(),
                role: Role::Tsa,
                common_name: cn.to_owned(),
                issuer: "tsa-root".to_owned(),
                alg: SigAlg::Sha256Rsa,
                not_before: from,
                not_after: to,
                signer: None,
                key,
                cert,
            });
        }

        let mut crls = Vec::new();
        for ca in entities
            .iter()
            .filter(|e| matches!(e.role, Role::Root | Role::IssuingCa))
        {
            let der = ca_crl(&entities, ca, lookup_name(&names, &ca.id)?, 0)?;
            crls.push(Crl {
                issuer: ca.id.clone(),
                der,
            });
        }

        Ok(TestPki {
            seed,
            entities,
            crls,
        })
    }

    /// The entity called `id`.
    pub fn entity(&self, id: &str) -> Result<&Entity, DevkitError> {
        find(&self.entities, id)
    }

    /// Every signer entity.
    pub fn signers(&self) -> impl Iterator<Item = &Entity> {
        self.entities.iter().filter(|e| e.role == Role::Signer)
    }

    /// The DER certificates from `id` up to, but without, its root: what a signature
    /// carries (x5c, CMS certificates).
    pub fn chain(&self, id: &str) -> Result<Vec<Vec<u8>>, DevkitError> {
        let mut out = Vec::new();
        let mut e = self.entity(id)?;
        while e.role != Role::Root {
            out.push(e.cert.clone());
            e = self.entity(&e.issuer)?;
        }
        Ok(out)
    }

    /// The roots (trust anchors), DER.
    pub fn roots(&self) -> Vec<&[u8]> {
        self.entities
            .iter()
            .filter(|e| e.role == Role::Root)
            .map(|e| e.cert.as_slice())
            .collect()
    }

    /// Every CA's CRL as [`TestPki::crls`] has it, but listing `padding` more revoked
    /// certificates that no certificate of the hierarchy is (for measuring what a national
    /// CA's CRL of tens of thousands of entries costs). In the order of `crls`.
    pub fn padded_crls(&self, padding: usize) -> Result<Vec<Vec<u8>>, DevkitError> {
        self.crls
            .iter()
            .map(|c| {
                let ca = self.entity(&c.issuer)?;
                let cert: rasn_pkix::Certificate = rasn::der::decode(&ca.cert)
                    .map_err(|e| DevkitError::Encode(format!("certificate: {e}")))?;
                ca_crl(&self.entities, ca, &cert.tbs_certificate.subject, padding)
            })
            .collect()
    }

    /// The CRL of CA `id`.
    pub fn crl(&self, id: &str) -> Result<&[u8], DevkitError> {
        self.crls
            .iter()
            .find(|c| c.issuer == id)
            .map(|c| c.der.as_slice())
            .ok_or_else(|| DevkitError::Missing(format!("CRL of {id}")))
    }

    /// A TSA of the hierarchy ("tsa-1", "tsa-2", "tsa-3") as a signer for `hozon_tsa::protocol`.
    pub fn tsa(&self, id: &str) -> Result<CertifiedSigner, DevkitError> {
        let e = self.entity(id)?;
        if e.role != Role::Tsa {
            return Err(DevkitError::Missing(format!("{id} is not a TSA")));
        }
        let signer = SoftwareSigner::from_pkcs8_der(e.key.pkcs8_der())
            .map_err(|err| DevkitError::Key(err.to_string()))?;
        CertifiedSigner::new(Arc::new(signer), self.chain(id)?)
            .map_err(|err| DevkitError::Key(format!("{id}: {err}")))
    }

    /// Writes the hierarchy under `dir` (see the module documentation for the layout).
    pub fn write(&self, dir: &Path) -> Result<(), DevkitError> {
        for sub in ["trust", "certs", "keys", "crl"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| DevkitError::io(dir, e))?;
        }
        let mut index = Index {
            generator: "hozon dev pki".into(),
            seed: self.seed,
            entities: Vec::new(),
            crls: Vec::new(),
        };
        for e in &self.entities {
            let cert_file = format!("certs/{}.pem", e.id);
            let key_file = format!("keys/{}.key.pem", e.id);
            write_pem(dir, &cert_file, "CERTIFICATE", &e.cert)?;
            write_pem(dir, &key_file, "PRIVATE KEY", e.key.pkcs8_der())?;
            if e.role == Role::Root {
                write_pem(dir, &format!("trust/{}.pem", e.id), "CERTIFICATE", &e.cert)?;
            }
            index.entities.push(IndexEntity {
                id: e.id.clone(),
                role: e.role,
                common_name: e.common_name.clone(),
                issuer: e.issuer.clone(),
                alg: e.alg.name().to_owned(),
                not_before: e.not_before,
                not_after: e.not_after,
                cert: cert_file,
                key: key_file,
                signer: e.signer.clone(),
            });
        }
        for c in &self.crls {
            let file = format!("crl/{}.crl.pem", c.issuer);
            write_pem(dir, &file, "X509 CRL", &c.der)?;
            index.crls.push(IndexCrl {
                issuer: c.issuer.clone(),
                file,
            });
        }
        let json =
            serde_json::to_vec_pretty(&index).map_err(|e| DevkitError::Encode(e.to_string()))?;
        std::fs::write(dir.join("pki.json"), json).map_err(|e| DevkitError::io(dir, e))
    }

    /// Reads a hierarchy written by [`TestPki::write`].
    pub fn load(dir: &Path) -> Result<TestPki, DevkitError> {
        let path = dir.join("pki.json");
        let bytes = std::fs::read(&path).map_err(|e| DevkitError::io(&path, e))?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| DevkitError::Format(format!("{}: {e}", path.display())))?;
        let mut entities = Vec::new();
        for ie in index.entities {
            let alg = match ie.alg.as_str() {
                "sha1WithRSAEncryption" => SigAlg::Sha1Rsa,
                "sha256WithRSAEncryption" => SigAlg::Sha256Rsa,
                other => {
                    return Err(DevkitError::Format(format!(
                        "{}: unknown algorithm {other}",
                        ie.id
                    )))
                }
            };
            entities.push(Entity {
                key: Key::from_pkcs8_der(&read_pem(dir, &ie.key, "PRIVATE KEY")?)?,
                cert: read_pem(dir, &ie.cert, "CERTIFICATE")?,
                id: ie.id,
                role: ie.role,
                common_name: ie.common_name,
                issuer: ie.issuer,
                alg,
                not_before: ie.not_before,
                not_after: ie.not_after,
                signer: ie.signer,
            });
        }
        let crls = index
            .crls
            .into_iter()
            .map(|c| {
                Ok(Crl {
                    der: read_pem(dir, &c.file, "X509 CRL")?,
                    issuer: c.issuer,
                })
            })
            .collect::<Result<_, DevkitError>>()?;
        Ok(TestPki {
            seed: index.seed,
            entities,
            crls,
        })
    }
}

/// The serial number magnitude of a DER certificate.
pub fn cert_serial(cert_der: &[u8]) -> Result<Vec<u8>, DevkitError> {
    let cert: rasn_pkix::Certificate = rasn::der::decode(cert_der)
        .map_err(|e| DevkitError::Encode(format!("certificate: {e}")))?;
    let bytes = hozon_tsa::asn1::integer_content(&cert.tbs_certificate.serial_number);
    Ok(match bytes.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest.to_vec(),
        _ => bytes,
    })
}

fn find<'a>(entities: &'a [Entity], id: &str) -> Result<&'a Entity, DevkitError> {
    entities
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| DevkitError::Missing(format!("entity {id}")))
}

fn lookup_name<'a>(names: &'a [(String, Name)], id: &str) -> Result<&'a Name, DevkitError> {
    names
        .iter()
        .find(|(n, _)| n == id)
        .map(|(_, name)| name)
        .ok_or_else(|| DevkitError::Missing(format!("issuer {id}")))
}

fn write_pem(dir: &Path, file: &str, label: &str, der: &[u8]) -> Result<(), DevkitError> {
    let path = dir.join(file);
    let text = pem::encode(&pem::Pem::new(label, der.to_vec()));
    std::fs::write(&path, text).map_err(|e| DevkitError::io(&path, e))
}

fn read_pem(dir: &Path, file: &str, label: &str) -> Result<Vec<u8>, DevkitError> {
    let path = dir.join(file);
    let text = std::fs::read(&path).map_err(|e| DevkitError::io(&path, e))?;
    let p =
        pem::parse(text).map_err(|e| DevkitError::Format(format!("{}: {e}", path.display())))?;
    if p.tag() != label {
        return Err(DevkitError::Format(format!(
            "{}: PEM label {:?}, expected {label:?}",
            path.display(),
            p.tag()
        )));
    }
    Ok(p.into_contents())
}

#[derive(Serialize, Deserialize)]
struct Index {
    generator: String,
    seed: u64,
    entities: Vec<IndexEntity>,
    crls: Vec<IndexCrl>,
}

#[derive(Serialize, Deserialize)]
struct IndexEntity {
    id: String,
    role: Role,
    common_name: String,
    issuer: String,
    alg: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    cert: String,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signer: Option<SignerProfile>,
}

#[derive(Serialize, Deserialize)]
struct IndexCrl {
    issuer: String,
    file: String,
}

mod role_serde {
    use super::HcRole;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(role: &HcRole, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HcRole, D::Error> {
        let code = String::deserialize(d)?;
        HcRole::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("hcRole {code}")))
    }
}

mod kind_serde {
    use super::CertificateKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &CertificateKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CertificateKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "card" => Ok(CertificateKind::Card),
            "remote" => Ok(CertificateKind::Remote),
            other => Err(serde::de::Error::custom(format!(
                "certificate kind {other}"
            ))),
        }
    }
}

/// The CRL of `ca` (named `name`) over `entities`: its revoked signers, then `padding` more
/// entries with made-up serial numbers (16 octets: 0x55 × 8, then the entry's index)
/// revoked on 2024-01-01 (keyCompromise), none of which any certificate here carries.
fn ca_crl(
    entities: &[Entity],
    ca: &Entity,
    name: &rasn_pkix::Name,
    padding: usize,
) -> Result<Vec<u8>, DevkitError> {
    let revoked = entities
        .iter()
        .filter(|e| e.issuer == ca.id && e.id != ca.id)
        .filter_map(|e| {
            let at = e.signer.as_ref()?.revoked?;
            Some(Revocation {
                serial: cert_serial(&e.cert).ok()?,
                date: at,
                reason: 3, // affiliationChanged
            })
        })
        .chain((0..padding as u64).map(|i| {
            let mut serial = vec![0x55u8; 16];
            serial[8..].copy_from_slice(&i.to_be_bytes());
            Revocation {
                serial,
                date: date(2024, 1, 1),
                reason: 1, // keyCompromise
            }
        }))
        .collect();
    // The legacy CA's last CRL was issued as it closed; the others are current.
    let (this_update, next_update) = if ca.not_after < date(2026, 1, 1) {
        (date(2020, 12, 1), date(2030, 12, 1))
    } else {
        (date(2026, 10, 1), date(2036, 10, 1))
    };
    issue_crl(
        &CrlSpec {
            number: 1,
            this_update,
            next_update,
            revoked,
        },
        Issuer {
            name,
            key: &ca.key,
            alg: ca.alg,
        },
    )
}
