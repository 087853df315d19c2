"""The chapters' plumbing: one module per chapter of the book, named after it.

What a chapter's notebook would otherwise carry as local functions: how its tables are put
together, its claims worded and judged against the paper, its findings written out, the figures
only it draws. Each module
imports the library (:mod:`xailib`) and nothing of another chapter; what two chapters share lives
in the library. Import one with ``from xailib.chapters import sanity_checks``.

| module | chapter |
| --- | --- |
| ``rise`` | 02 RISE: deletion, insertion and the pointing game |
| ``impact_score`` | 03 Impact Score |
| ``adversarial_patch`` | 04 adversarial patches and Impact Coverage |
| ``neuromask`` | 05 NeuroMask (its figures) |
| ``sanity_checks`` | 06 sanity checks |
| ``localisation`` | 07 localisation |
| ``trustworthiness`` | 08 trustworthiness |
| ``faithfulness`` | 09 faithfulness |
| ``leaderboard`` | 10 leaderboard |
"""
