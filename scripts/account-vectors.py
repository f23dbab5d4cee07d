#!/usr/bin/env python3
"""Independent implementation of Coffer's account cryptography, used to produce the committed
test vectors that the Swift code (Sources/CofferCrypto/Account) must reproduce byte for byte.

It shares no code with the Swift implementation: it is written from SPEC.md §5/§6 and uses the
Python `cryptography` package (scrypt, PBKDF2, HKDF, Ed25519, X25519, AES-GCM).

    python3 scripts/account-vectors.py            # rewrites Tests/CofferCryptoTests/Vectors/account-*.json
    python3 scripts/account-vectors.py --check    # exits 1 if the committed files differ

Everything here is deterministic (fixed password, salt, keys and nonces; Ed25519 signatures are
deterministic), so running it again must produce identical files.
"""

import base64
import json
import sys
import unicodedata
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

VECTORS = Path(__file__).resolve().parent.parent / "Tests" / "CofferCryptoTests" / "Vectors"
PRODUCED_BY = f"scripts/account-vectors.py (Python cryptography {cryptography.__version__})"

ENVELOPE_VERSION = 1
LOGIN_KEY_INFO = b"coffer/v1/login-key"
WRAPPING_KEY_INFO = b"coffer/v1/wrapping-key"

# Fixed inputs. The password mixes ASCII, precomposed Latin letters, a non-Latin script and an emoji,
# so both UTF-8 encoding and NFC normalisation are exercised.
PASSWORD = "Crème brûlée – pässwörd ✓ 鍵 🔑"
SALT = bytes.fromhex("9f3c0e5ad17b2248c6e1f05b3a8d7e6402b9c4f1e8a7d6c5b4a3928170f6e5d4")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def normalized_email(email: str) -> str:
    # Python's str.strip() strips Unicode whitespace, like Swift's .whitespacesAndNewlines.
    return email.strip().lower()


def master_key(password: str, salt: bytes, params: dict) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    if params["algorithm"] == "scrypt":
        return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(secret)
    if params["algorithm"] == "pbkdf2-sha256":
        return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=params["iterations"]).derive(secret)
    raise ValueError(params)


def hkdf(master: bytes, info: bytes) -> bytes:
    # salt=None is RFC 5869's "not provided", i.e. HashLen zero bytes.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def login_key(master: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hkdf(master, LOGIN_KEY_INFO))


def raw_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def context_component(value: str) -> str:
    # "%" first, so that an escaped "|" is not escaped twice.
    return value.replace("%", "%25").replace("|", "%7C")


def associated_data(purpose: str, owner: str, obj) -> bytes:
    canonical = "coffer/v1|" + "|".join(context_component(v) for v in (purpose, owner, obj or ""))
    return bytes([ENVELOPE_VERSION]) + canonical.encode("utf-8")


def seal(plaintext: bytes, key: bytes, nonce: bytes, purpose: str, owner: str, obj=None) -> str:
    assert len(key) == 32 and len(nonce) == 12
    sealed = AESGCM(key).encrypt(nonce, plaintext, associated_data(purpose, owner, obj))  # ciphertext || tag
    return b64url(bytes([ENVELOPE_VERSION]) + nonce + sealed)


def login_message(email: str, challenge: str, action: str) -> bytes:
    return ("coffer/v1/auth\n" + action + "\n" + normalized_email(email) + "\n" + challenge).encode("utf-8")


def kdf_vectors():
    cases = []
    for name, params in (
        ("scrypt", {"algorithm": "scrypt", "n": 1 << 17, "r": 8, "p": 1}),
        ("pbkdf2-sha256", {"algorithm": "pbkdf2-sha256", "iterations": 600_000}),
    ):
        master = master_key(PASSWORD, SALT, params)
        cases.append({
            "name": name,
            "parameters": params,
            "parametersJSON": json.dumps(params, separators=(",", ":")),
            "masterKeyHex": master.hex(),
            "loginPublicKey": b64url(raw_public(login_key(master))),
            "wrappingKeyHex": hkdf(master, WRAPPING_KEY_INFO).hex(),
        })
    return {
        "producedBy": PRODUCED_BY,
        "password": PASSWORD,
        "passwordUTF8Hex": unicodedata.normalize("NFC", PASSWORD).encode("utf-8").hex(),
        "saltHex": SALT.hex(),
        "cases": cases,
    }, cases[0]


def hkdf_vector():
    master = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    login = login_key(master)
    return {
        "producedBy": PRODUCED_BY,
        "masterKeyHex": master.hex(),
        "cases": [
            {"info": info.decode(), "outputHex": hkdf(master, info).hex()}
            for info in (LOGIN_KEY_INFO, WRAPPING_KEY_INFO)
        ],
        "loginPrivateKeyHex": raw_private(login).hex(),
        "loginPublicKey": b64url(raw_public(login)),
        "wrappingKeyHex": hkdf(master, WRAPPING_KEY_INFO).hex(),
    }


def envelope_vectors():
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    cases = []
    for nonce_hex, purpose, owner, obj, plaintext in (
        ("cafebabefacedbaddecaf888", "item", "alice@example.com", "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
         '{"title":"Bank","password":"hunter2 ✓"}'),
        ("000000000000000000000001", "account-key", "alice@example.com", None, ""),
        ("0102030405060708090a0b0c", "vault-metadata", "b|ob%40@example.com", "x|y", "pipes are escaped"),
    ):
        nonce = bytes.fromhex(nonce_hex)
        context = {"purpose": purpose, "owner": owner}
        if obj is not None:
            context["object"] = obj
        cases.append({
            "keyHex": key.hex(),
            "nonceHex": nonce.hex(),
            "context": context,
            "associatedDataHex": associated_data(purpose, owner, obj).hex(),
            "plaintext": plaintext,
            "envelope": seal(plaintext.encode("utf-8"), key, nonce, purpose, owner, obj),
        })
    return {"producedBy": PRODUCED_BY, "cases": cases}


def login_proof_vectors(scrypt_case):
    master = bytes.fromhex(scrypt_case["masterKeyHex"])
    key = login_key(master)
    cases = []
    for email, challenge, action in (
        ("  Alice.Example@Example.COM ", "q3BJx0Rm2k8Vt1Yw9zLhA4sNfE6uGcPd7oTbWiKjXrM", "login"),
        ("alice.example@example.com", "Zm9yLWRlbGV0aW9uLW9ubHk", "delete-account"),
    ):
        message = login_message(email, challenge, action)
        cases.append({
            "email": email,
            "challenge": challenge,
            "action": action,
            "messageHex": message.hex(),
            "signature": b64url(key.sign(message)),
        })
    return {
        "producedBy": PRODUCED_BY,
        "derivedFrom": "the scrypt case of account-kdf.json (its login key)",
        "loginPublicKey": b64url(raw_public(key)),
        "cases": cases,
    }


def bundle_vector():
    master = bytes.fromhex("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")
    email = " Alice.Example@Example.COM\n"
    owner = normalized_email(email)
    account_key = bytes.fromhex("4b8f0c1e2d3a59687786a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")
    sharing = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    wrapping = hkdf(master, WRAPPING_KEY_INFO)
    bundle = {
        "encryptedAccountKey": seal(account_key, wrapping, bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabac"), "account-key", owner),
        "publicKey": b64url(raw_public(sharing)),
        "encryptedPrivateKey": seal(raw_private(sharing), account_key, bytes.fromhex("b1b2b3b4b5b6b7b8b9babbbc"),
                                    "sharing-private-key", owner),
    }
    return {
        "producedBy": PRODUCED_BY,
        "masterKeyHex": master.hex(),
        "email": email,
        "normalizedEmail": owner,
        "wrappingKeyHex": wrapping.hex(),
        "accountKeyHex": account_key.hex(),
        "sharingPrivateKeyHex": raw_private(sharing).hex(),
        "loginPublicKey": b64url(raw_public(login_key(master))),
        "bundle": bundle,
    }


def main():
    kdf, scrypt_case = kdf_vectors()
    files = {
        "account-kdf.json": kdf,
        "account-hkdf.json": hkdf_vector(),
        "account-envelope.json": envelope_vectors(),
        "account-login-proof.json": login_proof_vectors(scrypt_case),
        "account-bundle.json": bundle_vector(),
    }
    check = "--check" in sys.argv[1:]
    stale = []
    for name, content in files.items():
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        path = VECTORS / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(VECTORS.parent.parent.parent)}")
    if stale:
        print("stale vectors: " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
