def main(items: list, discount: float = 0.0):
    subtotal = sum(float(item["price"]) * int(item.get("qty", 1)) for item in items)
    return {
        "lines": len(items),
        "subtotal": round(subtotal, 2),
        "total": round(subtotal * (1 - discount), 2),
    }
