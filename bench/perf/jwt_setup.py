#!/usr/bin/env python3
"""Writes what bench/perf/cg-jwt.sh needs: an Ed25519 key set (JWKS) and one
token signed with it, valid for a day (issuer https://idp.bench, audience
bench, subject bench-user). Needs Python's `cryptography` package.

usage: jwt_setup.py DIR   -> DIR/jwks.json, DIR/token
"""
import base64
import json
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(out: str) -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public), "kid": "bench", "alg": "EdDSA", "use": "sig"}
    with open(f"{out}/jwks.json", "w") as f:
        json.dump({"keys": [jwk]}, f)
    now = int(time.time())
    header = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": "bench"}).encode())
    claims = {"sub": "bench-user", "iss": "https://idp.bench", "aud": "bench", "nbf": now - 60, "exp": now + 86400}
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode())
    with open(f"{out}/token", "w") as f:
        f.write(f"{header}.{payload}.{b64url(signature)}")


if __name__ == "__main__":
    main(sys.argv[1])
