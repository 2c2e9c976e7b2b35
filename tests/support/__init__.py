"""Helpers the test tiers share: instances, servers, the git client, a whole platform, a browser."""
