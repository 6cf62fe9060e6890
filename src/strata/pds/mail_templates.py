"""What the PDS's mails say: one plain-text template per purpose, with the reference PDS's
subjects.

Each mail carries its code on a line of its own ending in `code: <CODE>`, which is where
`strata.pds.mail.outbox_code` finds it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mail:
    """A subject and a plain-text body."""

    subject: str
    text: str


def confirm_email(code: str) -> Mail:
    """The code that confirms the account's email address (confirmEmail)."""
    return Mail(
        "Email Confirmation",
        f"Your verification code: {code}\n"
        "\n"
        "Enter it in the app to confirm this email address.\n"
        "\n"
        "If you didn't ask to confirm your email, you can safely ignore this\n"
        "message.\n",
    )


def reset_password(code: str, handle: str) -> Mail:
    """The code that sets a new password for the account @`handle` (resetPassword)."""
    return Mail(
        "Password Reset Requested",
        "We received a request to reset the password for the account\n"
        f"@{handle}.\n"
        "\n"
        f"Your reset code: {code}\n"
        "\n"
        "To choose a new password, enter this code in the app along with your\n"
        "new password.\n"
        "\n"
        "If you didn't ask for a reset, you can ignore this message: your\n"
        "password stays as it is.\n",
    )


def plc_operation(code: str) -> Mail:
    """The code that lets the PDS sign a change of the account's DID (signPlcOperation)."""
    return Mail(
        "PLC Update Operation Requested",
        "We received a request to update your account's identity (its PLC\n"
        "operation).\n"
        "\n"
        f"Your confirmation code: {code}\n"
        "\n"
        "Updating your identity is a very sensitive operation: it can move your\n"
        "account to another server or hand its control to other keys. Only\n"
        "proceed if you are confident in what you are doing.\n",
    )


def delete_account(code: str) -> Mail:
    """The code that deletes the account, given with its password (deleteAccount)."""
    return Mail(
        "Account Deletion Requested",
        f"Your account deletion code: {code}\n"
        "\n"
        "To permanently delete your account, enter this code in the app along\n"
        "with your password.\n"
        "\n"
        "If you didn't ask to delete your account, you should change your\n"
        "password immediately.\n",
    )


def update_email(code: str) -> Mail:
    """The code that changes the account's confirmed email address (updateEmail)."""
    return Mail(
        "Email Update Requested",
        f"Your email update code: {code}\n"
        "\n"
        "To change the email address of your account, enter this code in the\n"
        "app along with your new email address.\n"
        "\n"
        "If you didn't ask to change your email, you should change your\n"
        "password immediately.\n",
    )
