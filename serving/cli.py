"""`loganalyzer serve` (the API under uvicorn) and `loganalyzer keys` (API keys)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from pydantic import ValidationError
from rich.console import Console

if TYPE_CHECKING:
    from serving.settings import ServingSettings

keys_app = typer.Typer(
    help="API keys: create, list, rotate, revoke (each maps to one tenant).", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)


def _settings() -> ServingSettings:
    from serving.settings import ServingSettings

    try:
        return ServingSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        console.print(f"[red]configuration error:[/red] {problems}")
        raise typer.Exit(2) from None


def _port_free(host: str, port: int) -> str | None:
    """None when host:port can be bound, else why not (one line)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Run the REST API (docs at /docs) with uvicorn: one worker, uvloop, httptools, no access log.

    Why one worker on 2 cores: PostgreSQL needs the other core; two workers gave 10-30 % more
    requests/s but an unstable p99.
    """
    import uvicorn

    from serving.main import create_app

    settings = _settings()
    problem = _port_free(host, port)
    if problem is not None:
        console.print(
            f"[red]port {port} on {host} is not available[/red] ({problem}): "
            "stop what runs there or pass --port"
        )
        raise typer.Exit(2)
    console.print(f"API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", highlight=False)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def _connect() -> psycopg.Connection:
    from loganalyzer.db.connection import connect

    settings = _settings()
    try:
        return connect(settings.database_url)
    except psycopg.OperationalError as exc:
        from loganalyzer.db.login_users import mask_password

        console.print(
            f"[red]cannot reach the database[/red] ({mask_password(settings.database_url)}): "
            f"{str(exc).splitlines()[0]}"
        )
        raise typer.Exit(1) from None


def _missing_table() -> typer.Exit:
    console.print("[red]the api_keys table does not exist[/red]: run `loganalyzer db migrate` first")
    return typer.Exit(1)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant whose data the key reads and acts on.")],
    admin: Annotated[bool, typer.Option("--admin", help="The key sees every tenant.")] = False,
    label: Annotated[str, typer.Option(help="What the key is for (shown by `keys list`).")] = "",
) -> None:
    """Create a key and print it once: only its SHA-256 is stored, so it cannot be shown again."""
    from serving.keys import store_new_key

    if not tenant.strip() or len(tenant) > 200:
        console.print("[red]--tenant must be 1 to 200 characters[/red]")
        raise typer.Exit(2)
    with _connect() as conn:
        try:
            key = store_new_key(conn, tenant, admin, label)
        except psycopg.errors.UndefinedTable:
            raise _missing_table() from None
    console.print(
        f"created key {key.key_id} for tenant {tenant!r}{' (admin)' if admin else ''}; it is shown once:"
    )
    print(key.secret_key)


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, tenants, admin flag, creation and revocation times (never the keys)."""
    with _connect() as conn:
        try:
            rows = conn.execute(
                "SELECT id, tenant, is_admin, label, created_at, revoked_at, expires_at, "
                "expires_at <= now() FROM api_keys ORDER BY created_at"
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            raise _missing_table() from None
    for r in rows:
        if r[5]:
            state = f"revoked {r[5]:%Y-%m-%d %H:%M}"
        elif r[6]:
            state = f"{'expired' if r[7] else 'expires'} {r[6]:%Y-%m-%d %H:%M}"
        else:
            state = "active"
        print(f"{r[0]}\t{r[1]}\t{'admin' if r[2] else 'tenant'}\t{state}\t{r[4]:%Y-%m-%d %H:%M}\t{r[3]}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Stop a key from working (within API_KEY_CACHE_SECONDS on running servers)."""
    with _connect() as conn:
        try:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
            )
        except psycopg.errors.UndefinedTable:
            raise _missing_table() from None
    if cur.rowcount == 0:
        console.print(f"[red]no active key {key_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The id of the key to replace (from `keys list`).")],
    grace_hours: Annotated[
        float,
        typer.Option(min=0, max=24 * 90, help="How long the old key keeps working beside the new one."),
    ] = 24.0,
) -> None:
    """Create a successor for the same tenant (and admin flag) and let the old key expire after
    the grace period: clients switch to the new key while both work, then the old one stops."""
    from serving.keys import rotate_key

    with _connect() as conn:
        try:
            rotated = rotate_key(conn, key_id, grace_hours * 3600.0)
        except psycopg.errors.UndefinedTable:
            raise _missing_table() from None
    if rotated is None:
        console.print(f"[red]no active key {key_id!r}[/red] (revoked, expired or unknown)")
        raise typer.Exit(1)
    console.print(
        f"key {key_id} expires at {rotated.old_expires_at:%Y-%m-%d %H:%M:%S %Z}; its successor "
        f"{rotated.new.key_id} for tenant {rotated.tenant!r} is shown once:"
    )
    print(rotated.new.secret_key)


def register(app: typer.Typer) -> None:
    """Adds `serve` and `keys` to the `loganalyzer` command."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
