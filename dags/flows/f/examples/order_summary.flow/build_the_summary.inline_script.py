def main(receipt: str, order: dict):
    return {
        "customer": order["customer"],
        "receipt": receipt,
        "total": order["total"],
        "lines": order["lines"],
    }
