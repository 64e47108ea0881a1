def main(invoice: dict):
    # What the approver sees in the request's body: the step's result.
    return {"id": invoice["id"], "supplier": invoice["supplier"], "amount": float(invoice["amount"])}
