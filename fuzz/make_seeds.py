#!/usr/bin/env python3
"""Regenerates the committed seed corpus under fuzz/corpus/<target>/.

Assertions are signed with the TEST_ONLY_FUZZ_KEY_* constants of fuzz/src/lib.rs (so the validator
target's fixed client accepts them at its fixed clock); PEM/DER seeds are fresh throwaway keys made
with openssl here. Seeds are named *.seed. Needs python3-cryptography and openssl.
"""
import base64, json, os, re, subprocess, tempfile, uuid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = open(os.path.join(HERE, "src", "lib.rs")).read()
CLIENT, ISSUER = "fuzz-client", "https://auth.example.test"
TOKEN_URL, NOW = ISSUER + "/oauth2/token", 1_700_000_000


def const(name):
    body = re.search(r"pub const %s: &str = concat!\((.*?)\);" % name, LIB, re.S).group(1)
    return bytes.fromhex("".join(re.findall(r'"([0-9a-f]+)"', body)))


ED = serialization.load_der_private_key(const("TEST_ONLY_FUZZ_KEY_ED25519"), None)
P256 = serialization.load_der_private_key(const("TEST_ONLY_FUZZ_KEY_P256"), None)
RSA = serialization.load_der_private_key(const("TEST_ONLY_FUZZ_KEY_RSA"), None)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jws(header, claims, alg):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    msg = f"{h}.{p}".encode()
    if alg == "EdDSA":
        sig = ED.sign(msg)
    elif alg == "ES256":
        r, s = utils.decode_dss_signature(P256.sign(msg, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg.startswith("RS"):
        sig = RSA.sign(msg, padding.PKCS1v15(), getattr(hashes, "SHA" + alg[2:])())
    elif alg.startswith("PS"):
        h_ = getattr(hashes, "SHA" + alg[2:])()
        sig = RSA.sign(msg, padding.PSS(padding.MGF1(h_), h_.digest_size), h_)
    else:
        sig = b""
    return f"{h}.{p}.{b64(sig)}"


KIDS = {"EdDSA": "fuzz-ed25519", "ES256": "fuzz-p256"}


def rfc_claims(**over):
    c = {"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": str(uuid.uuid4())}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def rfc(alg, typ="client-authentication+jwt", **over):
    return jws({"alg": alg, "kid": KIDS.get(alg, "fuzz-rsa"), "typ": typ}, rfc_claims(**over), alg)


def nhs(**over):
    return jws({"alg": "RS512", "kid": "fuzz-rsa", "typ": "JWT"}, rfc_claims(aud=TOKEN_URL, **over), "RS512")


def form(assertion, client_id=None):
    s = ("grant_type=client_credentials&client_assertion_type="
         "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + assertion)
    return s + (f"&client_id={client_id}" if client_id else "")


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        with open(os.path.join(d, name + ".seed"), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


tokens = {
    "rfc_eddsa": rfc("EdDSA"), "rfc_es256": rfc("ES256"), "rfc_rs512": rfc("RS512", typ="JWT"),
    "rfc_ps256": rfc("PS256", aud=[ISSUER]), "rfc_rs256_nbf": rfc("RS256", typ=None, nbf=NOW - 5),
    "nhs_rs512": nhs(), "rfc_expired": rfc("EdDSA", exp=NOW - 100),
    "rfc_exp_far": rfc("ES256", exp=NOW + 3600), "rfc_rs384_unpinned": rfc("RS384"),
}
alg_none = b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(rfc_claims()).encode()) + "."
hs256 = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(rfc_claims()).encode()) + "." + b64(b"x" * 32)
crit = jws({"alg": "EdDSA", "kid": "fuzz-ed25519", "crit": ["exp"]}, rfc_claims(), "EdDSA")

write("jws_parse", {**tokens, "alg_none": alg_none, "hs256": hs256, "crit": crit, "two_parts": "eyJhbGciOiJub25lIn0.e30",
                    "padded": "eyJhbGciOiJub25lIn0=.e30=.", "dup_header": b64(b'{"alg":"none","alg":"RS512"}') + ".e30."})

v = {f"raw_{k}": b"\x01" + t.encode() for k, t in tokens.items()}
v.update({
    "raw_nhs_client_id": b"\x21" + tokens["nhs_rs512"].encode(), "raw_alg_none": b"\x01" + alg_none.encode(),
    "raw_hs256": b"\x01" + hs256.encode(), "raw_crit": b"\x01" + crit.encode(),
    "form_rfc": b"\x00" + form(tokens["rfc_eddsa"], CLIENT).encode(), "form_nhs": b"\x00" + form(tokens["nhs_rs512"]).encode(),
    "sign_eddsa": b"\x02" + json.dumps({"typ": "JWT"}).encode() + b"\n" + json.dumps(rfc_claims()).encode(),
    "sign_es256": b"\x06" + b"{}\n" + json.dumps(rfc_claims(aud=[ISSUER], nbf=NOW)).encode(),
    "sign_rs512_nhs": b"\x0a" + json.dumps({"typ": "JWT"}).encode() + b"\n" + json.dumps(rfc_claims(aud=TOKEN_URL)).encode(),
    "sign_legacy_aud": b"\xa2" + b"{}\n" + json.dumps(rfc_claims(aud=TOKEN_URL)).encode(),
    "sign_wrong_kid": b"\x06" + b'{"kid":"fuzz-ed25519"}\n' + json.dumps(rfc_claims()).encode(),
})
write("validator", v)

ed_pub = ED.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
pn = P256.public_key().public_numbers()
rn = RSA.public_key().public_numbers()
ib = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
okp = {"kty": "OKP", "crv": "Ed25519", "x": b64(ed_pub), "kid": "fuzz-ed25519", "alg": "EdDSA", "use": "sig"}
ecj = {"kty": "EC", "crv": "P-256", "x": b64(pn.x.to_bytes(32, "big")), "y": b64(pn.y.to_bytes(32, "big")), "kid": "fuzz-p256"}
rsaj = {"kty": "RSA", "n": ib(rn.n), "e": ib(rn.e), "kid": "fuzz-rsa", "alg": "RS512", "use": "sig"}
priv_ed = dict(okp, d=b64(ED.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())))
J = lambda o: json.dumps(o)
write("jwk_parse", {
    "okp": J(okp), "ec_p256": J(ecj), "rsa": J(rsaj), "nhs_jwks": J({"keys": [rsaj]}),
    "rfc_jwks": J({"keys": [okp, ecj, rsaj]}), "private_okp": J(priv_ed), "private_jwks": J({"keys": [priv_ed]}),
    "ec_no_y": J({"kty": "EC", "crv": "P-256", "x": ecj["x"]}), "oct": J({"kty": "oct", "k": "c2VjcmV0"}),
    "rsa_e_zero": J(dict(rsaj, e="AA")), "empty_keys": '{"keys":[]}', "not_object": "[1,2,3]",
})

with tempfile.TemporaryDirectory() as t:
    P = lambda n: os.path.join(t, n)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", P("rsa.pem"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", P("p384.pem"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", P("p521.pem"))
    openssl("genpkey", "-algorithm", "ed25519", "-out", P("ed.pem"))
    rd = lambda n: open(P(n), "rb").read()
    keys = {
        "pkcs8_rsa": rd("rsa.pem"), "pkcs8_p384": rd("p384.pem"), "pkcs8_p521": rd("p521.pem"), "pkcs8_ed25519": rd("ed.pem"),
        "pkcs1_rsa": openssl("rsa", "-in", P("rsa.pem"), "-traditional"),
        "sec1_p384": openssl("ec", "-in", P("p384.pem")),
        "der_p521": openssl("pkey", "-in", P("p521.pem"), "-outform", "DER"),
        "spki_rsa": openssl("pkey", "-in", P("rsa.pem"), "-pubout"),
        "rsa_public_pkcs1": openssl("rsa", "-in", P("rsa.pem"), "-RSAPublicKey_out"),
        "spki_ed25519": openssl("pkey", "-in", P("ed.pem"), "-pubout"),
    }
    enc = openssl("pkcs8", "-topk8", "-in", P("ed.pem"), "-v2", "aes-256-cbc", "-iter", "2048", "-passout", "pass:fuzz")
    enc_rsa = openssl("pkcs8", "-topk8", "-in", P("p384.pem"), "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512",
                      "-iter", "1000", "-passout", "pass:fuzz")
seeds = {k: b"\x00" + v for k, v in keys.items()}
seeds.update({"encrypted_ed25519": b"\x01fuzz\n" + enc, "encrypted_p384": b"\x01fuzz\n" + enc_rsa,
              "encrypted_wrong_pass": b"\x01nope\n" + enc, "jwk_private": b"\x00" + J(priv_ed).encode(),
              "jwks_kid": b"\x02fuzz-ed25519\n" + J({"keys": [priv_ed]}).encode(), "empty": b"\x00"})
write("key_load", seeds)

ct = FORM = "application/x-www-form-urlencoded"
write("token_form", {
    "rfc_form": b"\x01" + f"{FORM}\n\n{form(tokens['rfc_eddsa'], CLIENT)}".encode(),
    "nhs_form": b"\x01" + f"{FORM}\n\n{form(tokens['nhs_rs512'])}".encode(),
    "charset": b"\x01" + f"{FORM}; charset=UTF-8\n\ngrant_type=client_credentials&scope=a+b".encode(),
    "strict_charset": b"\x05" + f"{FORM};charset=utf-8\n\ngrant_type=client_credentials".encode(),
    "latin1": b"\x01" + f"{FORM}; charset=ISO-8859-1\n\ngrant_type=client%E9".encode(),
    "query": b"\x03" + f"{FORM}\ngrant_type=client_credentials\nclient_assertion=x".encode(),
    "duplicate": b"\x01" + f"{FORM}\n\ngrant_type=a&grant_type=b".encode(),
    "bad_percent": b"\x01" + f"{FORM}\n\nclient_assertion=%zz%2&x=%C3%28".encode(),
    "json_ct": b"\x01" + b'application/json\n\n{"grant_type":"client_credentials"}',
    "no_ct": b"\x00\n\ngrant_type=client_credentials&&=&a",
})

def resp(status, body, ct="application/json", retry=None, loc=None):
    flags = (1 if ct else 0) | (2 if retry else 0) | (4 if loc else 0)
    head = bytes([(status - 100) >> 8, (status - 100) & 255, flags])
    return head + f"{ct or ''}\n{retry or ''}\n{loc or ''}\n".encode() + body.encode()

write("token_response", {
    "nhs_success": resp(200, '{"access_token":"Sr5PGv19wTEHJdDr2wx2f7IGd0cw","expires_in":"599","token_type":"Bearer","issued_at":"1692835200000"}'),
    "rfc_success": resp(200, '{"access_token":"eyJhbGciOiJFUzI1NiJ9.e30.c2ln","expires_in":3600,"token_type":"bearer","scope":"a b","refresh_token":"r"}'),
    "float_expiry": resp(201, '{"access_token":"t","expires_in":3599.0,"token_type":"Bearer"}'),
    "bad_expiry": resp(200, '{"access_token":"secret-token-value-123","expires_in":"soon"}'),
    "missing_token": resp(200, '{"token":"secret-value","expires_in":1}'),
    "broken_json": resp(200, '{"access_token":"abc123abc123abc123",'),
    "nhs_error": resp(400, '{"error":"invalid_request","error_description":"Invalid \'alg\' header in client_assertion JWT - unsupported JWT algorithm - must be \'RS512\'","message_id":"rrt-1-2"}'),
    "nhs_public_key_error": resp(401, '{"error":"public_key error","error_description":"JWT signature verification failed","message_id":"rrt-3"}'),
    "html_502": resp(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", ct="text/html"),
    "rate_limited_seconds": resp(429, "", ct=None, retry="3"),
    "rate_limited_date": resp(503, '{"error":"temporarily_unavailable"}', retry="Wed, 21 Oct 2015 07:28:00 GMT"),
    "redirect": resp(302, "", ct=None, loc="https://evil.example/token"),
})
