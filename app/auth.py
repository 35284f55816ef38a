"""Sign-in for a served workbench (Streamlit only).

- OIDC (Streamlit's `st.login`, an `[auth]` section in .streamlit/secrets.toml): the user is their e-mail;
  operators are listed in WORKBENCH_OPERATORS (comma-separated e-mails or names).
- A shared token for a small group (WORKBENCH_TOKEN): a user gives their name and the token; the operator's
  own token (WORKBENCH_OPERATOR_TOKEN) signs in as an operator. The names are what jobs and links record:
  a shared token trusts its holders to give their own.
- Neither: the single-user local tool, as `make run` serves it; the user is the machine's operator.
"""
from __future__ import annotations

import hmac
import os

import streamlit as st

from analyses.acting import LOCAL, User
from compute.settings import oidc_configured

SESSION_KEY = "_signed_in"


def operators() -> set[str]:
    return {x.strip().lower() for x in os.environ.get("WORKBENCH_OPERATORS", "").split(",") if x.strip()}


def current_user() -> User:
    """The signed-in user; draws the sign-in form and stops the page while nobody is."""
    token = os.environ.get("WORKBENCH_TOKEN", "")
    if token:
        return _token_user(token, os.environ.get("WORKBENCH_OPERATOR_TOKEN", ""))
    if oidc_configured():
        return _oidc_user()
    return LOCAL


def _token_user(token: str, operator_token: str) -> User:
    user = st.session_state.get(SESSION_KEY)
    if isinstance(user, User):
        with st.sidebar:
            st.caption(f"signed in as **{user.name}**" + (" (operator)" if user.operator else ""))
            if st.button("Sign out", key="sign_out"):
                del st.session_state[SESSION_KEY]
                st.rerun()
        return user
    st.title("Interpretability workbench")
    st.caption("This server is shared by a group: sign in with your name and the group's token.")
    with st.form("sign_in"):
        name = st.text_input("Your name (recorded on your jobs and links)", key="sign_in_name")
        given = st.text_input("Token", type="password", key="sign_in_token")
        go = st.form_submit_button("Sign in", type="primary")
    if go:
        name = name.strip()
        is_operator = bool(operator_token) and hmac.compare_digest(given.encode(), operator_token.encode())
        if not name:
            st.error("Give your name: it is what your jobs and links record.")
        elif is_operator or hmac.compare_digest(given.encode(), token.encode()):
            st.session_state[SESSION_KEY] = User(name[:80], operator=is_operator or name.lower() in operators())
            st.rerun()
        else:
            st.error("That token is not this server's.")
    st.stop()


def _oidc_user() -> User:
    if not st.user.is_logged_in:
        st.title("Interpretability workbench")
        st.caption("This server is shared by a group: sign in to use it.")
        st.button("Sign in", on_click=st.login, type="primary", key="oidc_sign_in")
        st.stop()
    who = str(st.user.get("email") or st.user.get("name") or st.user.get("sub") or "signed-in user")
    with st.sidebar:
        st.caption(f"signed in as **{who}**")
        st.button("Sign out", on_click=st.logout, key="oidc_sign_out")
    return User(who, operator=who.lower() in operators())
