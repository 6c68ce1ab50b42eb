"""meshlab's differential fidelity runner: meshlab's translator and real Envoy against Istio's own code.

Not part of the installed package (it imports meshlab's public and private modules). See
`fidelity/README.md` for the design and how to add scenarios; `make fidelity` runs it.
"""
