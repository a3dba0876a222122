"""People-facing pages: sign-in and MFA, home, the tenant switcher, tenant-admin pages."""
