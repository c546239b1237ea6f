"""The ML library every model package uses: its manifest (the contract), data checks, the gate, drift, layout.

Nothing in this package imports Prefect or Azure: the same modules run on a laptop, inside an Azure ML
command job, behind an online endpoint and in a batch deployment. The sample packages are in `models/`.
"""
