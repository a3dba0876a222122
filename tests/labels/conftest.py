from tests.campaigns.conftest import ready, team  # noqa: F401 - the campaign fixtures, shared
