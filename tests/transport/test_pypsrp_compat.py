import xml.etree.ElementTree as ElementTree

from pypsrp.wsman import NAMESPACES, WSMan

from fleet_ecs.transport.pypsrp_compat import make_pypsrp_thread_safe


def test_building_a_client_no_longer_changes_elementtrees_prefix_map(monkeypatch):
    make_pypsrp_thread_safe()
    make_pypsrp_thread_safe()  # idempotent
    for prefix, uri in NAMESPACES.items():  # other libraries in this process may have
        ElementTree.register_namespace(prefix, uri)  # changed the map: put pypsrp's back

    def mutate(prefix, uri):  # what another thread's serialiser must never run into
        raise AssertionError(f"register_namespace({prefix!r}) called again")

    monkeypatch.setattr(ElementTree, "register_namespace", mutate)
    client = WSMan("127.0.0.1", ssl=False, auth="basic", encryption="never",
                   username="u", password="p")
    assert client.max_envelope_size > 0
    # pypsrp still gets its prefixes in the messages it serialises.
    element = ElementTree.Element("{http://www.w3.org/2003/05/soap-envelope}Envelope")
    assert ElementTree.tostring(element).startswith(b"<s:Envelope")
