"""A broker with ACLs on (for tests that need principals): an mTLS administrator, a super
user, on an SSL listener, and SCRAM users on a SASL_PLAINTEXT listener. Certificates are
made here, by pki.py."""

from __future__ import annotations

from harness import Broker, free_port
from pki import Authority

ADMIN_PRINCIPAL = "User:CN=admin,O=Strata tests"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def start_authorized(request, tmp_path, super_users: str = ADMIN_PRINCIPAL,
                     extra: dict | None = None) -> tuple[Broker, dict, int]:
    """Starts the broker: it, the administrator's client config and the SASL port."""
    folder = tmp_path / "pki"
    ca = Authority.create(folder, "strata-test-ca")
    server = ca.issue(folder, "broker", server=True)
    admin_cert = ca.issue(folder, "admin", server=False)
    b = Broker(tmp_path / "data", tmp_path / "strata-serve.stderr")
    sasl_port = free_port()
    b.config = {
        "listeners": f"SSL://127.0.0.1:{b.kafka_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "ssl.keystore.location": str(server.keystore),
        "ssl.truststore.location": str(ca.ca_path),
        "ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "authorizer.class.name": AUTHORIZER,
        "super.users": super_users,
        **(extra or {}),
    }
    b.config_path = b.stderr_path.parent / "strata.toml"
    request.node.strata_broker = b
    b.start()
    admin_conf = {
        "bootstrap.servers": b.bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca.ca_path),
        "ssl.certificate.location": str(admin_cert.cert_path),
        "ssl.key.location": str(admin_cert.key_path),
    }
    return b, admin_conf, sasl_port
