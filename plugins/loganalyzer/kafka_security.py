"""SASL/SCRAM and TLS settings for production Kafka: secrets from files, checked before connecting.

Why a module of its own: the non-secret librdkafka properties arrive as KAFKA_PROPERTY_*
variables, but a password should come from a mounted secret file rather than sit in the process
environment, and a half-configured SASL or TLS setup should stop the command at start with the
variable to set, not surface minutes later as a retry loop against the broker. Secret values
are never part of a repr or a log line (`redacted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

#: variable naming a file whose content (trailing newline dropped) becomes the property
SECRET_FILES = {
    "KAFKA_SASL_PASSWORD_FILE": "sasl.password",
    "KAFKA_SSL_KEY_PASSWORD_FILE": "ssl.key.password",
}
#: mechanisms that authenticate with a username and a password
PASSWORD_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
#: properties that name a file librdkafka opens at connect time
FILE_PROPERTIES = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")
_SECRET_WORDS = ("password", "secret", "sasl.jaas.config", "ssl.key.pem")


class KafkaSecurityError(ValueError):
    """SASL/TLS configuration is incomplete or contradictory; the message names what to set."""


def _variable(prop: str) -> str:
    return "KAFKA_PROPERTY_" + prop.upper().replace(".", "_")


def secret_properties(env: Mapping[str, str], properties: Mapping[str, str]) -> dict[str, str]:
    """Properties read from the secret files named in `env`."""
    out: dict[str, str] = {}
    for variable, prop in SECRET_FILES.items():
        path = env.get(variable)
        if not path:
            continue
        if prop in properties:
            raise KafkaSecurityError(f"{variable} and {_variable(prop)} are both set: keep one")
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise KafkaSecurityError(f"{variable}={path!r} cannot be read ({exc.strerror})") from None
        if not value:
            raise KafkaSecurityError(f"{variable}={path!r} is empty")
        out[prop] = value
    return out


def check(properties: Mapping[str, str]) -> None:
    """Refuse a SASL or TLS set-up that cannot work, naming the variable to set."""
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    known = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
    if protocol not in known:
        raise KafkaSecurityError(
            f"KAFKA_PROPERTY_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(sorted(known))}"
        )
    if protocol.startswith("SASL"):
        # librdkafka's default mechanism is GSSAPI (Kerberos), configured by its own properties
        mechanism = properties.get("sasl.mechanism") or properties.get("sasl.mechanisms") or "GSSAPI"
        if mechanism.upper() in PASSWORD_MECHANISMS:
            if not properties.get("sasl.username"):
                raise KafkaSecurityError(f"sasl.mechanism={mechanism} needs KAFKA_PROPERTY_SASL_USERNAME")
            if not properties.get("sasl.password"):
                raise KafkaSecurityError(
                    f"sasl.mechanism={mechanism} needs a password: KAFKA_SASL_PASSWORD_FILE (a secret file) "
                    "or KAFKA_PROPERTY_SASL_PASSWORD"
                )
    elif any(p.startswith("sasl.") for p in properties):
        raise KafkaSecurityError(
            f"sasl.* properties are set but security.protocol={protocol} does not use them: "
            "set KAFKA_PROPERTY_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
        )
    for prop in FILE_PROPERTIES:
        path = properties.get(prop)
        if path and path != "probe" and not Path(path).is_file():
            raise KafkaSecurityError(f"{_variable(prop)}={path!r}: no such file")


def is_secret(prop: str) -> bool:
    return any(word in prop.lower() for word in _SECRET_WORDS)


def redacted(properties: Mapping[str, str]) -> dict[str, str]:
    """The properties with every secret value replaced, for logs and reprs."""
    return {k: ("***" if is_secret(k) else v) for k, v in properties.items()}
