# expect: cluster.nodes."Node_3": "Node_3" is not a valid DNS label; rename it (use lower-case letters, digits and '-', at most 63 characters, neither starting nor ending with '-').
{
  cluster.nodes.Node_3 = {
    roles = ["worker"];
    addresses = ["10.9.0.13"];
  };
}
