"""End-to-end tests of the real nestcached (a package, so its conftest does not shadow Tests/oracle/conftest.py)."""
