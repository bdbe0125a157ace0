"""The whole pipeline on one machine, wired from template.yaml (`hookline local`).

moto stands in for AWS, PostgreSQL is the developer's or an embedded one, and
each Lambda function runs in worker processes the way Lambda runs containers.
"""
