"""Bundles for sites with no network: one verified archive holding the kit, every Python dependency
as a wheel, the llama.cpp build, the models, the spaCy pipelines and a manifest with an SBOM.

* :mod:`kit.bundle.manifest`: the manifest (``bundle.json``), the CycloneDX SBOM, hashes and the
  Ed25519 signature. Standard library only (the signature imports ``cryptography`` when used), so
  that ``install.sh`` can check an archive before anything is installed.
* :mod:`kit.bundle.verify`: checks every file of an archive or an extracted folder.
* :mod:`kit.bundle.wheels`: the wheelhouse, rebuilt from the installed distributions.
* :mod:`kit.bundle.create`: ``kit bundle create``; :mod:`kit.bundle.install`: the models and the
  record of the bundle on the site.
"""
