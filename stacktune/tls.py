"""The operator's TLS certificate and key for nginx, checked on the controller before any change.

nginx refuses to start (or to reload) with a certificate it cannot read or a key that is not
the certificate's; found at deploy time that is a proxy tier down. Here it is a PlanError
naming the variable. `cryptography` ships with ansible-core, so it is there wherever the
plan runs from Ansible; it is imported only when a certificate is given.
"""

from __future__ import annotations

from pathlib import Path

from stacktune.model import PlanError


def _read(path: str, variable: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as error:
        raise PlanError(f"{variable} = {path!r} cannot be read ({error.strerror}); set it to a "
                        "PEM file on the controller readable by the user running Ansible, or "
                        "leave both nginx_tls_certificate and nginx_tls_key empty for a "
                        "self-signed certificate") from None


def check_certificate_pair(certificate_path: str, key_path: str,
                           certificate_var: str = "nginx_tls_certificate",
                           key_var: str = "nginx_tls_key") -> None:
    """Raise PlanError unless both files are PEM, readable, and the key is the certificate's."""
    if bool(certificate_path) != bool(key_path):
        missing = key_var if certificate_path else certificate_var
        raise PlanError(f"{missing} is empty but {certificate_var if certificate_path else key_var}"
                        f" is set; set both (the certificate and its private key) or neither")
    if not certificate_path:
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_pem = _read(certificate_path, certificate_var)
    key_pem = _read(key_path, key_var)
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise PlanError(f"{certificate_var} = {certificate_path!r} is not a PEM certificate; "
                        "use the file that begins with -----BEGIN CERTIFICATE-----") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise PlanError(f"{key_var} = {key_path!r} is not an unencrypted PEM private key; "
                        "nginx cannot ask for a passphrase at boot: use the key without one"
                        ) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != \
            certificate.public_key().public_bytes(encoding, public):
        raise PlanError(f"{key_var} = {key_path!r} does not match {certificate_var} = "
                        f"{certificate_path!r} (its public key differs); set {key_var} to the "
                        "private key the certificate was issued for")
