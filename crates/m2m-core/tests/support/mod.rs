//! m2m-core's own test helpers (the shared ones are in m2m-testkit). Here: for the key, JWS,
//! assertion, secrets and property tests, keys written by
//! the real `openssl` CLI (each made once per test binary, on first use), openssl sign/verify
//! wrappers, ECDSA signature conversion between JOSE `r||s` and DER, and secret-leak checks.
//!
//! Keys are generated in a short-lived temporary directory and kept in memory; every openssl call
//! that needs files gets its own temporary directory, so nothing is left behind on disk.
#![allow(dead_code, unreachable_pub)]

/// The validator tests' fixtures.
pub mod validate;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use m2m_core::alg::Algorithm;

/// The passphrase of every encrypted fixture.
pub const PASS: &str = "correct horse battery staple";

/// Runs `openssl` in `dir` and returns stdout, or stderr as the error.
pub fn try_openssl(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl (install it: apt-get install -y openssl): {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `openssl` in `dir`, panicking with its output on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    try_openssl(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// A scratch directory for one openssl call, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Writes `bytes` to `dir/name`.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write fixture");
}

/// The bytes of a fixture key, produced by openssl on first use and cached for the binary's life.
///
/// PEM: `rsa-pkcs1.pem` (genrsa -traditional), `rsa-pkcs8.pem` (genpkey), `rsa4096.pem`,
/// `rsa1024-pkcs1.pem`, `rsa1024-pkcs8.pem`, `p256.pem` / `p384.pem` / `p521.pem` (ecparam
/// -genkey: SEC1 after an EC PARAMETERS block), `p256-pkcs8.pem`, `p384-pkcs8.pem`,
/// `ed25519.pem`, encrypted PKCS#8 `rsa-aes256.pem`, `p256-aes128.pem`, `ed25519-sha512prf.pem`,
/// legacy-encrypted `rsa-legacy-enc.pem`, public `rsa-pub.pem`, `rsa-pub-pkcs1.pem`,
/// `rsa1024-pub.pem`.
/// DER: `rsa-pkcs1.der`, `rsa-pkcs8.der`, `p256-pkcs8.der`, `p384-sec1.der`, `ed25519.der`,
/// `rsa-aes256.der`.
pub fn fixture(name: &str) -> &'static [u8] {
    type Cells = Mutex<HashMap<String, Arc<OnceLock<&'static [u8]>>>>;
    static CELLS: OnceLock<Cells> = OnceLock::new();
    let cell = {
        let mut map = CELLS
            .get_or_init(Default::default)
            .lock()
            .expect("fixture map");
        map.entry(name.to_owned()).or_default().clone()
    };
    // Generating under the cell (not the map lock) lets different fixtures build in parallel
    // while two tests asking for the same one wait for a single openssl run.
    cell.get_or_init(|| Box::leak(make(name).into_boxed_slice()))
}

fn make(name: &str) -> Vec<u8> {
    let dir = scratch();
    let d = dir.path();
    let pass = format!("pass:{PASS}");
    // Writes a dependency into the scratch dir under its own name and returns that name.
    let dep = |src: &'static str| {
        put(d, src, fixture(src));
        src
    };
    let args: Vec<String> = match name {
        "rsa-pkcs1.pem" => s(&["genrsa", "-traditional", "-out", "out", "2048"]),
        "rsa1024-pkcs1.pem" => s(&["genrsa", "-traditional", "-out", "out", "1024"]),
        "rsa-pkcs8.pem" => s(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "out",
        ]),
        "rsa4096.pem" => s(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:4096",
            "-out",
            "out",
        ]),
        "p256.pem" => s(&["ecparam", "-name", "prime256v1", "-genkey", "-out", "out"]),
        "p384.pem" => s(&["ecparam", "-name", "secp384r1", "-genkey", "-out", "out"]),
        "p521.pem" => s(&["ecparam", "-name", "secp521r1", "-genkey", "-out", "out"]),
        "ed25519.pem" => s(&["genpkey", "-algorithm", "ed25519", "-out", "out"]),
        "rsa1024-pkcs8.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            dep("rsa1024-pkcs1.pem"),
            "-out",
            "out",
        ]),
        "p256-pkcs8.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            dep("p256.pem"),
            "-out",
            "out",
        ]),
        "p384-pkcs8.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            dep("p384.pem"),
            "-out",
            "out",
        ]),
        "rsa-aes256.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            &pass,
            "-in",
            dep("rsa-pkcs8.pem"),
            "-out",
            "out",
        ]),
        "rsa-aes256.der" => s(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            &pass,
            "-in",
            dep("rsa-pkcs8.pem"),
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        "p256-aes128.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-128-cbc",
            "-passout",
            &pass,
            "-in",
            dep("p256.pem"),
            "-out",
            "out",
        ]),
        "ed25519-sha512prf.pem" => s(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA512",
            "-passout",
            &pass,
            "-in",
            dep("ed25519.pem"),
            "-out",
            "out",
        ]),
        "rsa-legacy-enc.pem" => s(&[
            "rsa",
            "-in",
            dep("rsa-pkcs1.pem"),
            "-aes256",
            "-traditional",
            "-passout",
            &pass,
            "-out",
            "out",
        ]),
        "rsa-pub.pem" => s(&[
            "pkey",
            "-in",
            dep("rsa-pkcs8.pem"),
            "-pubout",
            "-out",
            "out",
        ]),
        "rsa-pub-pkcs1.pem" => s(&[
            "rsa",
            "-in",
            dep("rsa-pkcs8.pem"),
            "-RSAPublicKey_out",
            "-out",
            "out",
        ]),
        "rsa1024-pub.pem" => s(&[
            "pkey",
            "-in",
            dep("rsa1024-pkcs1.pem"),
            "-pubout",
            "-out",
            "out",
        ]),
        "rsa-pkcs1.der" => s(&[
            "rsa",
            "-in",
            dep("rsa-pkcs1.pem"),
            "-traditional",
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        "rsa-pkcs8.der" => s(&[
            "pkey",
            "-in",
            dep("rsa-pkcs8.pem"),
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        "p256-pkcs8.der" => s(&[
            "pkey",
            "-in",
            dep("p256.pem"),
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        "p384-sec1.der" => s(&[
            "ec",
            "-in",
            dep("p384.pem"),
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        "ed25519.der" => s(&[
            "pkey",
            "-in",
            dep("ed25519.pem"),
            "-outform",
            "DER",
            "-out",
            "out",
        ]),
        other => panic!("unknown fixture {other}"),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(d, &args);
    std::fs::read(d.join("out")).expect("read generated key")
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `openssl pkey -pubout` of a private key file (PEM or DER, encrypted with [`PASS`] or not).
pub fn openssl_public_pem(private: &[u8]) -> Vec<u8> {
    let dir = scratch();
    put(dir.path(), "key", private);
    let pass = format!("pass:{PASS}");
    let inform = if private.starts_with(b"-----") {
        "PEM"
    } else {
        "DER"
    };
    openssl(
        dir.path(),
        &[
            "pkey", "-inform", inform, "-in", "key", "-passin", &pass, "-pubout",
        ],
    )
}

fn digest(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 => "-sha256",
        Algorithm::Rs384 | Algorithm::Ps384 | Algorithm::Es384 => "-sha384",
        _ => "-sha512",
    }
}

fn is_pss(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512)
}

/// ECDSA coordinate size in bytes for an `ES*` algorithm.
pub fn ec_coord_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Es256 => 32,
        Algorithm::Es384 => 48,
        _ => 66,
    }
}

fn is_ec(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512)
}

/// Verifies a JOSE signature with `openssl` (ECDSA `r||s` is converted to DER first).
pub fn openssl_verify(
    public_pem: &[u8],
    alg: Algorithm,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let dir = scratch();
    let d = dir.path();
    put(d, "pub.pem", public_pem);
    put(d, "msg", msg);
    if alg == Algorithm::EdDsa {
        put(d, "sig", sig);
        return try_openssl(
            d,
            &[
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg",
                "-sigfile", "sig",
            ],
        )
        .map(drop);
    }
    let sig = if is_ec(alg) {
        ecdsa_fixed_to_der(sig)
    } else {
        sig.to_vec()
    };
    put(d, "sig", &sig);
    let mut args = vec![
        "dgst",
        digest(alg),
        "-verify",
        "pub.pem",
        "-signature",
        "sig",
    ];
    if is_pss(alg) {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    args.push("msg");
    try_openssl(d, &args).map(drop)
}

/// Signs with `openssl` and returns the JOSE signature (ECDSA converted to fixed `r||s`).
pub fn openssl_sign(private_pem: &[u8], alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    let dir = scratch();
    let d = dir.path();
    put(d, "key.pem", private_pem);
    put(d, "msg", msg);
    if alg == Algorithm::EdDsa {
        return openssl(
            d,
            &[
                "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg",
            ],
        );
    }
    let mut args = vec!["dgst", digest(alg), "-sign", "key.pem"];
    if is_pss(alg) {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    args.push("msg");
    let sig = openssl(d, &args);
    if is_ec(alg) {
        ecdsa_der_to_fixed(&sig, ec_coord_len(alg))
    } else {
        sig
    }
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

fn der_uint(bytes: &[u8], out: &mut Vec<u8>) {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut v = bytes[first..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    out.push(0x02);
    der_len(v.len(), out);
    out.extend(v);
}

/// JOSE ECDSA `r||s` (RFC 7518 §3.4) to the DER `ECDSA-Sig-Value` openssl wants.
pub fn ecdsa_fixed_to_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let mut body = Vec::new();
    der_uint(r, &mut body);
    der_uint(s, &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// DER `ECDSA-Sig-Value` to JOSE `r||s` with `coord`-byte halves.
pub fn ecdsa_der_to_fixed(der: &[u8], coord: usize) -> Vec<u8> {
    fn take_len(b: &[u8], i: &mut usize) -> usize {
        let first = b[*i];
        *i += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let n = usize::from(first & 0x7f);
        let mut len = 0;
        for _ in 0..n {
            len = (len << 8) | usize::from(b[*i]);
            *i += 1;
        }
        len
    }
    let mut i = 0;
    assert_eq!(der[i], 0x30, "ECDSA-Sig-Value is a SEQUENCE");
    i += 1;
    take_len(der, &mut i);
    let mut out = Vec::with_capacity(2 * coord);
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER");
        i += 1;
        let len = take_len(der, &mut i);
        let int = &der[i..i + len];
        i += len;
        let int = &int[int.iter().position(|b| *b != 0).unwrap_or(int.len())..];
        assert!(int.len() <= coord, "integer wider than the curve");
        out.extend(std::iter::repeat_n(0, coord - int.len()));
        out.extend_from_slice(int);
    }
    out
}

/// The base64 body of a PEM file (all lines between BEGIN and END, joined).
pub fn pem_body(pem: &[u8]) -> String {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.trim().is_empty())
        .collect()
}

/// Panics if `text` contains any 12-character window of any `secret` (so neither the whole secret
/// nor a fragment of it, such as one PEM line or part of a base64url member, leaks).
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    const WINDOW: usize = 12;
    for secret in secrets {
        let chars: Vec<char> = secret.chars().collect();
        assert!(chars.len() >= WINDOW, "secret too short to check: {what}");
        for start in 0..=chars.len() - WINDOW {
            let fragment: String = chars[start..start + WINDOW].iter().collect();
            assert!(
                !text.contains(&fragment),
                "{what} leaks secret material ({fragment:?} found in {text:?})"
            );
        }
    }
}
