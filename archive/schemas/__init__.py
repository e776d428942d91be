"""XML schemas shipped inside every AIP (``schemas/``) and used to validate what we write.

Package data only; see PROVENANCE.md in this folder for origin and licence.
"""
