"""The Nuonuo (诺诺) open-API provider: signed requests, bodies, codes and the `TaxPlatform`.

Facts about the provider and where they were read: `docs/providers.md`.
"""

from kaipiao.platform.nuonuo.client import NuonuoAccount, NuonuoConfig, NuonuoPlatform

__all__ = ["NuonuoAccount", "NuonuoConfig", "NuonuoPlatform"]
