import Polychip
print(Polychip.registry.backends.map(\.name))
