"""The operator's certificate and key for nginx: checked before any change, naming the variable."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stacktune.model import PlanError
from stacktune.tls import check_certificate_pair


def write_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A real self-signed certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_matching_pair_and_no_pair_pass(tmp_path):
    cert, key = write_pair(tmp_path, "site")
    check_certificate_pair(str(cert), str(key))
    check_certificate_pair("", "")


def test_a_missing_certificate_names_the_variable(tmp_path):
    _, key = write_pair(tmp_path, "site")
    with pytest.raises(PlanError, match=r"nginx_tls_certificate = .* cannot be read"):
        check_certificate_pair(str(tmp_path / "nope.crt"), str(key))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_certificate_names_the_variable(tmp_path):
    cert, key = write_pair(tmp_path, "site")
    cert.chmod(0)
    with pytest.raises(PlanError, match=r"nginx_tls_certificate = .* cannot be read"):
        check_certificate_pair(str(cert), str(key))


def test_a_file_that_is_no_certificate_names_the_variable(tmp_path):
    _, key = write_pair(tmp_path, "site")
    with pytest.raises(PlanError, match=r"nginx_tls_certificate = .* is not a PEM certificate"):
        check_certificate_pair(str(key), str(key))


def test_a_key_of_another_certificate_names_the_key(tmp_path):
    cert, _ = write_pair(tmp_path, "site")
    _, other_key = write_pair(tmp_path, "other")
    with pytest.raises(PlanError) as error:
        check_certificate_pair(str(cert), str(other_key))
    assert "nginx_tls_key" in str(error.value) and "does not match" in str(error.value)


def test_one_of_the_two_alone_is_refused(tmp_path):
    cert, _ = write_pair(tmp_path, "site")
    with pytest.raises(PlanError, match="nginx_tls_key is empty"):
        check_certificate_pair(str(cert), "")


def test_a_directory_given_as_the_certificate_names_the_variable(tmp_path):
    _, key = write_pair(tmp_path, "site")
    with pytest.raises(PlanError, match=r"nginx_tls_certificate = .* cannot be read"):
        check_certificate_pair(str(tmp_path), str(key))
