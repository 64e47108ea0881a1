def main(orders: list):
    return {"orders": len(orders), "items": sum(len(order.get("items", [])) for order in orders)}
