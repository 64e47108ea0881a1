def main(decisions: list):
    # A rejected invoice's element is the error object (SuspendedDisapproved): skip_failures.
    approved = [d["id"] for d in decisions if "error" not in d]
    rejected = [d["error"]["message"] for d in decisions if "error" in d]
    return {"approved": approved, "rejected": rejected}
