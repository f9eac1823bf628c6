"""The analyses of docs/method.md §4-§6, one module per concern.

Every module holds pure functions (``xr.Dataset -> pd.DataFrame`` or
``pd.DataFrame -> pd.DataFrame``); :mod:`moemui.steps.analyses` does the file I/O for
the workflow's rules. torch loads only in :mod:`moemui.analyses.ablation`'s model steps.
"""
