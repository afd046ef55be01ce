"""The tax-platform port: request types, typed outcomes, and the adapters that speak to platforms.

TaxPlatform (protocol)
 ├── HttpPlatform   the sandbox protocol over HTTP (kaipiao.platform.http)
 └── FakePlatform   in memory, same behaviour, for unit tests (kaipiao.sandbox.fake)
"""
