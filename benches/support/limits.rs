//! The machine limits benchmarks report their figures against, measured in the same run
//! (these machines are noisy, so absolute numbers from another run mean little).
#![allow(dead_code)]

use std::process::Command;
use std::time::Instant;

use hozon_devkit::pki::TestPki;
use rayon::prelude::*;

/// `openssl speed -evp ALG -bytes BYTES -seconds SECONDS [-multi CORES]`: bytes per second,
/// or `None` when openssl is missing or prints something else.
pub fn openssl_speed(alg: &str, bytes: usize, seconds: u32, cores: usize) -> Option<f64> {
    let mut cmd = Command::new("openssl");
    cmd.args(["speed", "-evp", alg, "-bytes", &bytes.to_string()])
        .args(["-seconds", &seconds.to_string()]);
    if cores > 1 {
        cmd.args(["-multi", &cores.to_string()]);
    }
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The summary line: `sha256   3003187.20k` (in 1000s of bytes per second).
    let line = text.lines().rev().find(|l| l.starts_with(alg))?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k * 1000.0)
}

/// aws-lc-rs RSA-2048 PKCS#1 v1.5 SHA-256 verifications per second, `threads` threads at
/// once, `n` each, with a dev-hierarchy signer's key parsed once per thread
/// (`ParsedPublicKey`), as the verifier keeps its keys. Parsing the key for every
/// verification (`UnparsedPublicKey`) measured about two thirds of this rate on one thread,
/// and one key shared by two threads about 60,000/s against 69,000–88,000 for a key each;
/// either would flatter every ratio printed against it.
pub fn rsa_verify_rate(pki: &TestPki, threads: usize, n: usize) -> f64 {
    let e = pki.entity("doctor-01").expect("signer");
    let msg = b"rate";
    let sig = e
        .key
        .sign(hozon_devkit::x509::SigAlg::Sha256Rsa, msg)
        .expect("signs");
    let spki: rasn_pkix::SubjectPublicKeyInfo = rasn::der::decode(e.key.spki_der()).expect("SPKI");
    let t = Instant::now();
    (0..threads).into_par_iter().for_each(|_| {
        let key = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            spki.subject_public_key.as_raw_slice(),
        )
        .expect("an RSA public key");
        for _ in 0..n {
            key.verify_sig(msg, &sig).expect("verifies");
        }
    });
    (n * threads) as f64 / t.elapsed().as_secs_f64()
}

/// aws-lc-rs `digest` over `size`-byte messages, `threads` threads at once for about
/// `seconds`: bytes per second. The library's own rate, next to openssl's: aws-lc takes its
/// scalar SHA-512 code (`sha512_block_data_order_nohw` in a perf profile) on this AMD EPYC,
/// where openssl runs its AVX2 code.
pub fn aws_lc_digest_rate(
    alg: &'static aws_lc_rs::digest::Algorithm,
    size: usize,
    threads: usize,
    seconds: f64,
) -> f64 {
    let data = vec![0x5a_u8; size];
    let t = Instant::now();
    let hashed: usize = (0..threads)
        .into_par_iter()
        .map(|_| {
            let mut n = 0;
            while t.elapsed().as_secs_f64() < seconds {
                for _ in 0..64 {
                    std::hint::black_box(aws_lc_rs::digest::digest(
                        alg,
                        std::hint::black_box(&data),
                    ));
                }
                n += 64;
            }
            n * size
        })
        .sum();
    hashed as f64 / t.elapsed().as_secs_f64()
}
