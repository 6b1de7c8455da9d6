"""The USB intake stage: a drive scanned, each repo package validated by its checks,
approved into the corpus or rejected, and the corpus read back.
"""
