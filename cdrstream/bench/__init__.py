"""The benchmark of contract §9: each figure beside a baseline measured in the same run."""
