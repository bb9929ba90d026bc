//! Algorithm policy: the date after which each algorithm no longer protects anything new
//! (DESIGN §3), as a TOML file.
//!
//! ```toml
//! name = "ETSI TS 119 312 v1.5.1"
//! renewal_window_days = 365     # "renewal due" when an algorithm of the last step ends within
//!
//! [[rule]]
//! algorithm = "sha1"            # sha1 sha256 sha384 sha512 sha3-256 sha3-512
//! until = "2012-08-01"          #   rsa-pkcs1 rsa-pss ecdsa (with min_bits / max_bits)
//!
//! [[rule]]
//! algorithm = "rsa-pkcs1"
//! min_bits = 1900
//! until = "2029-01-01"          # a rule without `until` never ends
//! ```
//!
//! An algorithm (with its key size) is *acceptable at* time t if some rule matches it and no
//! matching rule has ended by t. An algorithm no rule names is not acceptable: a policy must
//! say what it accepts. The shipped default ([`Policy::etsi`], [`ETSI_TOML`]) follows ETSI TS
//! 119 312 v1.5.1; [`Policy::bsi`] is the BSI TR-02102 profile beside it (RSA ≥ 1900 bits
//! PKCS#1 v1.5 ends 2025-12-31). A deployment passes its own file with `--policy`.
//!
//! The rule the verifier applies: each protection step must have used algorithms that were
//! acceptable when the next step covered it (or at the verification time, for the last step).

use chrono::NaiveDate;
use hozon_tsa::signer::DigestAlgorithm;
use serde::Deserialize;

use crate::token::SignatureAlgorithm;

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the expected shape.
    #[error("policy file: {0}")]
    Parse(String),
    /// A rule names an algorithm this verifier does not know.
    #[error("policy rule {index}: unknown algorithm {name:?}")]
    UnknownAlgorithm {
        /// Rule index (0-based).
        index: usize,
        /// The name.
        name: String,
    },
    /// A date is not YYYY-MM-DD.
    #[error("policy rule {index}: {value:?} is not a YYYY-MM-DD date")]
    Date {
        /// Rule index.
        index: usize,
        /// The value.
        value: String,
    },
}

/// What a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// A hash function.
    Digest(DigestAlgorithm),
    /// RSASSA-PKCS1-v1_5 (any hash; the hash is judged on its own).
    RsaPkcs1,
    /// RSASSA-PSS.
    RsaPss,
    /// ECDSA.
    Ecdsa,
}

impl Algorithm {
    /// The algorithm a policy-file name ([`Algorithm::name`]) stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "rsa-pkcs1" => Algorithm::RsaPkcs1,
            "rsa-pss" => Algorithm::RsaPss,
            "ecdsa" => Algorithm::Ecdsa,
            other => Algorithm::Digest(
                DigestAlgorithm::ALL
                    .iter()
                    .copied()
                    .find(|d| d.name() == other)?,
            ),
        })
    }

    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Digest(d) => d.name(),
            Algorithm::RsaPkcs1 => "rsa-pkcs1",
            Algorithm::RsaPss => "rsa-pss",
            Algorithm::Ecdsa => "ecdsa",
        }
    }
}

/// One algorithm as used by a step: a hash, or a signature scheme with its key size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Use {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Key size in bits (0 for hashes).
    pub bits: usize,
}

impl Use {
    /// A hash.
    pub fn digest(d: DigestAlgorithm) -> Use {
        Use {
            algorithm: Algorithm::Digest(d),
            bits: 0,
        }
    }

    /// A signature: the scheme with its key size, and its hash.
    pub fn signature(s: SignatureAlgorithm, bits: usize) -> [Use; 2] {
        let (algorithm, d) = match s {
            SignatureAlgorithm::RsaPkcs1(d) => (Algorithm::RsaPkcs1, d),
            SignatureAlgorithm::RsaPss(d) => (Algorithm::RsaPss, d),
            SignatureAlgorithm::Ecdsa(d) => (Algorithm::Ecdsa, d),
        };
        [Use { algorithm, bits }, Use::digest(d)]
    }

    /// "rsa-pkcs1 (2048 bits)" or "sha256".
    pub fn describe(&self) -> String {
        if self.bits > 0 {
            format!("{} ({} bits)", self.algorithm.name(), self.bits)
        } else {
            self.algorithm.name().to_owned()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    algorithm: Algorithm,
    min_bits: usize,
    max_bits: usize,
    until: Option<NaiveDate>,
}

/// An algorithm policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Its name, for reports.
    pub name: String,
    /// Days before an end date from which renewal is reported as due.
    pub renewal_window_days: u32,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default = "default_window")]
    renewal_window_days: u32,
    #[serde(default)]
    rule: Vec<FileRule>,
}

fn default_window() -> u32 {
    365
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    algorithm: String,
    #[serde(default)]
    min_bits: Option<usize>,
    #[serde(default)]
    max_bits: Option<usize>,
    #[serde(default)]
    until: Option<String>,
}

/// The shipped ETSI TS 119 312 v1.5.1 policy, as TOML.
pub const ETSI_TOML: &str = r#"name = "ETSI TS 119 312 v1.5.1"
renewal_window_days = 365

[[rule]]
algorithm = "sha1"
until = "2012-08-01"
[[rule]]
algorithm = "sha256"
[[rule]]
algorithm = "sha384"
[[rule]]
algorithm = "sha512"
[[rule]]
algorithm = "sha3-256"
[[rule]]
algorithm = "sha3-512"
[[rule]]
algorithm = "rsa-pkcs1"
max_bits = 1899
until = "2019-10-01"
[[rule]]
algorithm = "rsa-pkcs1"
min_bits = 1900
until = "2029-01-01"
[[rule]]
algorithm = "rsa-pss"
max_bits = 1899
until = "2019-10-01"
[[rule]]
algorithm = "rsa-pss"
min_bits = 1900
max_bits = 2999
until = "2029-01-01"
[[rule]]
algorithm = "rsa-pss"
min_bits = 3000
[[rule]]
algorithm = "ecdsa"
min_bits = 256
"#;

/// The verdict of the policy on one use at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Acceptable, with the date it ends (if it does).
    Acceptable {
        /// End date, if any.
        until: Option<NaiveDate>,
    },
    /// It had ended on this date.
    Ended(NaiveDate),
    /// No rule names it.
    Unknown,
}

impl Policy {
    /// Parses a policy file.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (index, r) in file.rule.into_iter().enumerate() {
            let algorithm =
                Algorithm::parse(&r.algorithm).ok_or_else(|| PolicyError::UnknownAlgorithm {
                    index,
                    name: r.algorithm.clone(),
                })?;
            let until = match r.until {
                None => None,
                Some(v) => Some(
                    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                        .map_err(|_| PolicyError::Date { index, value: v })?,
                ),
            };
            rules.push(Rule {
                algorithm,
                min_bits: r.min_bits.unwrap_or(0),
                max_bits: r.max_bits.unwrap_or(usize::MAX),
                until,
            });
        }
        Ok(Policy {
            name: file.name,
            renewal_window_days: file.renewal_window_days,
            rules,
        })
    }

    /// The shipped default (ETSI TS 119 312 v1.5.1).
    pub fn etsi() -> Policy {
        Policy::from_toml(ETSI_TOML).expect("the shipped policy parses")
    }

    /// The BSI TR-02102 profile: the ETSI policy, except that PKCS#1 v1.5 with RSA of 1900
    /// bits and more ends on 2025-12-31.
    pub fn bsi() -> Policy {
        let mut p = Policy::etsi();
        p.name = "BSI TR-02102 profile".into();
        for r in p.rules.iter_mut() {
            if r.algorithm == Algorithm::RsaPkcs1 && r.min_bits == 1900 {
                r.until = NaiveDate::from_ymd_opt(2025, 12, 31);
            }
        }
        p
    }

    /// Judges `u` at `date`.
    pub fn judge(&self, u: &Use, date: NaiveDate) -> Judgement {
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.algorithm == u.algorithm && (r.min_bits..=r.max_bits).contains(&u.bits))
            .collect();
        if matching.is_empty() {
            return Judgement::Unknown;
        }
        let end = matching.iter().filter_map(|r| r.until).min();
        match end {
            Some(e) if e <= date => Judgement::Ended(e),
            _ => Judgement::Acceptable { until: end },
        }
    }
}

/// How long a policy accepts an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acceptance {
    /// No rule accepts it.
    NotAccepted,
    /// Accepted for what is protected before this date.
    Until(NaiveDate),
    /// No end date.
    Forever,
}

impl std::fmt::Display for Acceptance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Acceptance::NotAccepted => f.write_str("not accepted"),
            Acceptance::Until(d) => write!(f, "until {d}"),
            Acceptance::Forever => f.write_str("no end date"),
        }
    }
}

/// One algorithm whose acceptance differs between two policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The algorithm (and key size).
    pub what: Use,
    /// Under the old policy.
    pub old: Acceptance,
    /// Under the new policy.
    pub new: Acceptance,
}

impl Change {
    /// Whether the new policy ends it earlier (what the archive must renew before).
    pub fn retires(&self) -> bool {
        self.new < self.old
    }
}

impl Policy {
    /// How long this policy accepts `u` at all.
    pub fn acceptance(&self, u: &Use) -> Acceptance {
        match self.judge(u, NaiveDate::MIN) {
            Judgement::Unknown => Acceptance::NotAccepted,
            Judgement::Acceptable { until: None } => Acceptance::Forever,
            Judgement::Acceptable { until: Some(d) } | Judgement::Ended(d) => Acceptance::Until(d),
        }
    }
}

/// What changes from `old` to `new`, algorithm by algorithm: every hash, and every signature
/// scheme at the usual key sizes and at each size a rule of either policy starts or stops at.
/// Earliest new end first.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut uses: Vec<Use> = DigestAlgorithm::ALL
        .iter()
        .map(|d| Use::digest(*d))
        .collect();
    for algorithm in [Algorithm::RsaPkcs1, Algorithm::RsaPss, Algorithm::Ecdsa] {
        let mut sizes: Vec<usize> = match algorithm {
            Algorithm::Ecdsa => vec![256, 384, 521],
            _ => vec![1024, 2048, 3072, 4096],
        };
        for r in old.rules.iter().chain(&new.rules) {
            if r.algorithm == algorithm {
                sizes.push(r.min_bits);
                if r.max_bits < usize::MAX {
                    sizes.push(r.max_bits);
                }
            }
        }
        sizes.retain(|b| *b > 0);
        sizes.sort_unstable();
        sizes.dedup();
        uses.extend(sizes.into_iter().map(|bits| Use { algorithm, bits }));
    }
    let mut changes: Vec<Change> = uses
        .into_iter()
        .map(|u| Change {
            what: u,
            old: old.acceptance(&u),
            new: new.acceptance(&u),
        })
        .filter(|c| c.old != c.new)
        .collect();
    changes.sort_by_key(|c| c.new);
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn etsi_dates() {
        let p = Policy::etsi();
        let sha1 = Use::digest(DigestAlgorithm::Sha1);
        assert_eq!(
            p.judge(&sha1, d("2012-07-31")),
            Judgement::Acceptable {
                until: Some(d("2012-08-01"))
            }
        );
        assert_eq!(
            p.judge(&sha1, d("2016-01-01")),
            Judgement::Ended(d("2012-08-01"))
        );
        let [rsa2048, sha256] =
            Use::signature(SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256), 2048);
        assert_eq!(
            p.judge(&sha256, d("2090-01-01")),
            Judgement::Acceptable { until: None }
        );
        assert_eq!(
            p.judge(&rsa2048, d("2028-12-31")),
            Judgement::Acceptable {
                until: Some(d("2029-01-01"))
            }
        );
        assert_eq!(
            p.judge(&rsa2048, d("2029-01-01")),
            Judgement::Ended(d("2029-01-01"))
        );
        let [rsa1024, _] =
            Use::signature(SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha1), 1024);
        assert_eq!(
            p.judge(&rsa1024, d("2019-10-01")),
            Judgement::Ended(d("2019-10-01"))
        );
        let [pss3072, _] =
            Use::signature(SignatureAlgorithm::RsaPss(DigestAlgorithm::Sha256), 3072);
        assert_eq!(
            p.judge(&pss3072, d("2100-01-01")),
            Judgement::Acceptable { until: None }
        );
        let [p256, _] = Use::signature(SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha256), 256);
        assert_eq!(
            p.judge(&p256, d("2100-01-01")),
            Judgement::Acceptable { until: None }
        );
        let [small_ec, _] = Use::signature(SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha256), 192);
        assert_eq!(p.judge(&small_ec, d("2000-01-01")), Judgement::Unknown);
    }

    #[test]
    fn bsi_ends_pkcs1_earlier() {
        let [rsa, _] = Use::signature(SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256), 2048);
        assert_eq!(
            Policy::bsi().judge(&rsa, d("2026-01-01")),
            Judgement::Ended(d("2025-12-31"))
        );
        assert!(matches!(
            Policy::etsi().judge(&rsa, d("2026-01-01")),
            Judgement::Acceptable { .. }
        ));
    }

    #[test]
    fn bad_files_are_named() {
        assert!(matches!(
            Policy::from_toml("nonsense"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            Policy::from_toml("name = \"x\"\n[[rule]]\nalgorithm = \"md5\"\n"),
            Err(PolicyError::UnknownAlgorithm { index: 0, .. })
        ));
        assert!(matches!(
            Policy::from_toml("name = \"x\"\n[[rule]]\nalgorithm = \"sha256\"\nuntil = \"soon\"\n"),
            Err(PolicyError::Date { index: 0, .. })
        ));
        assert!(matches!(
            Policy::from_toml("name = \"x\"\nextra = 1\n"),
            Err(PolicyError::Parse(_))
        ));
    }

    #[test]
    fn diff_names_what_a_new_policy_retires() {
        let old = Policy::etsi();
        let new = Policy::from_toml(&ETSI_TOML.replace(
            "algorithm = \"rsa-pkcs1\"\nmin_bits = 1900\nuntil = \"2029-01-01\"",
            "algorithm = \"rsa-pkcs1\"\nmin_bits = 1900\nuntil = \"2026-12-31\"",
        ))
        .unwrap();
        let changes = diff(&old, &new);
        assert!(
            !changes.is_empty(),
            "the edit must change something: {changes:?}"
        );
        let rsa2048 = changes
            .iter()
            .find(|c| c.what.algorithm == Algorithm::RsaPkcs1 && c.what.bits == 2048)
            .unwrap();
        assert_eq!(rsa2048.new, Acceptance::Until(d("2026-12-31")));
        assert!(rsa2048.retires());
        assert!(diff(&old, &old).is_empty());
        // Reversed, the same change is an extension, not a retirement.
        assert!(diff(&new, &old).iter().all(|c| !c.retires()));
    }
}
