"""Plain ML code for the diabetes regression sample.

Nothing in this package imports Prefect or Azure: the same modules run on a laptop,
inside an Azure ML command job, behind an online endpoint and in a batch deployment.
"""
