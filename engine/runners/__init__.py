"""Process entry points for jobs that span stages: a campaign (attempts, then the
training data derived from them), an evaluation and a post-promotion watch. They sit above
every stage they run, so no stage imports another stage's job.
"""
