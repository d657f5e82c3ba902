#!/usr/bin/env python3
"""Makes the test JWTs of the JWT scenarios, offline and reproducibly.

Usage: scripts/gen-test-jwt.py testdata/scenarios/authz-jwt/jwt

DIR/key.pem is a 2048-bit RSA key made once for tests only (created if missing with
`openssl genrsa`). Writes DIR/jwks.json (the public key as a JWKS, kid "mesh-test"),
and DIR/NAME.jwt for each token below, signed RS256 with `openssl dgst -sha256 -sign`.
`other.jwt` is signed by a second, throw-away key (a signature the JWKS cannot verify).
Tokens expire in 2100. Only the Python standard library and the openssl CLI are used.
"""

import base64
import json
import pathlib
import subprocess
import sys
import tempfile

ISSUER = "testing@mesh.local"
EXPIRY = 4102444800  # 2100-01-01
TOKENS = {
    "alice": {"sub": "alice", "groups": ["admins", "users"], "team": "payments"},
    "bob": {"sub": "bob", "groups": ["users"], "team": "search"},
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: pathlib.Path, claims: dict) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "mesh-test"}
    body = {"iss": ISSUER, "iat": 1700000000, "exp": EXPIRY, **claims}
    signing_input = f"{b64(json.dumps(header, separators=(',', ':')).encode())}." + b64(
        json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    )
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing_input}.{b64(sig)}"


def jwks(key: pathlib.Path) -> dict:
    text = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-noout", "-modulus"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    modulus = bytes.fromhex(text.strip().split("=", 1)[1])
    return {
        "keys": [
            {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": "mesh-test",
                "n": b64(modulus),
                "e": b64((65537).to_bytes(3, "big")),
            }
        ]
    }


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    key = out / "key.pem"
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True)
    (out / "jwks.json").write_text(json.dumps(jwks(key), separators=(",", ":")) + "\n")
    for name, claims in TOKENS.items():
        (out / f"{name}.jwt").write_text(sign(key, claims) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        other = pathlib.Path(tmp) / "other.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(other), "2048"],
            check=True,
            capture_output=True,
        )
        (out / "other.jwt").write_text(sign(other, TOKENS["alice"]) + "\n")


if __name__ == "__main__":
    main()
