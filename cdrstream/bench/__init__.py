"""The benchmark of SPEC section 9: each figure beside a baseline measured in the same run."""
