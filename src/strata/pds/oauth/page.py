"""The pages the PDS shows during an authorization: sign in and allow (or deny) a client, an
error that cannot be sent back to the client, and the self-submitting form of the `form_post`
response mode. Plain server-rendered HTML: no script except the form_post one."""

from __future__ import annotations

from html import escape
from typing import Final
from urllib.parse import urlsplit

from strata.pds.oauth.clients import Client
from strata.pds.oauth.scopes import DESCRIPTIONS

STYLE: Final = """
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; border-radius: 12px;
       padding: 1.5rem 2rem; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
.client { color: #4a5568; overflow-wrap: anywhere; }
ul { padding-left: 1.2rem; }
label { display: block; margin-top: .8rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit;
        border: 1px solid #c3c9d4; border-radius: 6px; }
.buttons { display: flex; gap: .6rem; margin-top: 1.2rem; }
button { flex: 1; padding: .6rem; font: inherit; border-radius: 6px; border: 1px solid #c3c9d4;
         background: #fff; cursor: pointer; }
button.allow { background: #1d6ef2; border-color: #1d6ef2; color: #fff; }
.error { color: #b42318; }
"""


def _document(title: str, body: str, script: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main>{script}</body></html>"
    )


def sign_in_page(
    client: Client,
    request_uri: str,
    scopes: list[str],
    redirect_uri: str,
    csrf: str,
    login_hint: str,
    hostname: str,
    error: str = "",
) -> str:
    """The page where the user signs in to this PDS and allows `client` what it asked for."""
    name = escape(client.name)
    where = escape(urlsplit(redirect_uri).netloc or redirect_uri)
    asked = "".join(f"<li>{escape(DESCRIPTIONS[s])}</li>" for s in scopes)
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = f"""
<h1>Sign in to {escape(hostname)}</h1>
<p class=client><strong>{name}</strong> ({escape(client.client_id)}) asks to:</p>
<ul>{asked}</ul>
<p class=client>You will be sent back to {where}.</p>
{problem}
<form method=post action=/oauth/authorize>
<input type=hidden name=request_uri value="{escape(request_uri)}">
<input type=hidden name=client_id value="{escape(client.client_id)}">
<input type=hidden name=csrf value="{escape(csrf)}">
<label for=identifier>Handle or email</label>
<input id=identifier name=identifier autocomplete=username value="{escape(login_hint)}">
<label for=password>Password</label>
<input id=password name=password type=password autocomplete=current-password>
<div class=buttons>
<button type=submit name=decision value=deny formnovalidate>Deny</button>
<button type=submit name=decision value=allow class=allow>Allow</button>
</div>
</form>"""
    return _document(f"Sign in to {client.name}", body)


def error_page(message: str) -> str:
    """A problem that cannot be sent back to the client (its request is unknown)."""
    body = f"<h1>Sign-in could not continue</h1><p class=error>{escape(message)}</p>"
    return _document("Sign-in error", body)


def form_post_page(uri: str, values: dict[str, str], nonce: str) -> str:
    """The `form_post` response mode: the browser posts the answer to the client."""
    fields = "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in values.items()
    )
    body = (
        f'<form id=answer method=post action="{escape(uri)}">{fields}'
        "<noscript><button type=submit>Continue</button></noscript></form>"
    )
    script = f'<script nonce="{nonce}">document.getElementById("answer").submit()</script>'
    return _document("Signing in", body, script)
