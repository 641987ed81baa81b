"""The only module that imports sentence-transformers. (Implementation: model issue.)"""
