"""Email normalisation: one account per address however it is typed."""


def normalize_email(email: str) -> str:
    return email.strip().lower()
