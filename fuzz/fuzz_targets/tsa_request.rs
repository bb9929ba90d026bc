//! The TSA's request parser and checks: any bytes must give a CheckedRequest or a Rejection,
//! never a panic. A rejection must encode as a TimeStampResp that our client parses back.
#![no_main]

use hozon_tsa::protocol::{check_request, rejection_response, TsaConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = TsaConfig::default();
    if let Err(rej) = check_request(data, &cfg) {
        let resp = rejection_response(&rej);
        assert!(hozon_tsa::client::parse_response(&resp).is_err());
    }
});
