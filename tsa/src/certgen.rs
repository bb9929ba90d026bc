//! (being written: PKCS#11 helper)
