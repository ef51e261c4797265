import pytest

from theo_ray.turn.entities import cpf_is_valid, extract_entities, normalise_phone
from theo_ray.turn.spoken_digits import spoken_to_digits


def kinds(text):
    return {(e.kind, e.value, e.valid) for e in extract_entities(text)}


@pytest.mark.parametrize("cpf, valid", [
    ("52998224725", True), ("11144477735", True), ("12345678909", True),
    ("52998224724", False), ("12345678900", False), ("11111111111", False), ("1234567890", False),
])
def test_cpf_check_digits(cpf, valid):
    assert cpf_is_valid(cpf) is valid


@pytest.mark.parametrize("text", [
    "Meu CPF é 529.982.247-25",
    "meu cpf é 52998224725",
    "meu cpf é cinco dois nove, nove oito dois, dois quatro sete, dois cinco",
    "o CPF: 529 982 247 25, tá?",
])
def test_valid_cpf_in_any_form(text):
    assert ("cpf", "52998224725", True) in kinds(text)


def test_invalid_cpf_is_kept_as_invalid():
    assert kinds("meu cpf é 123.456.789-00") == {("cpf", "12345678900", False)}


def test_unannounced_eleven_digits_need_valid_check_digits():
    assert kinds("anota aí 52998224725") == {("cpf", "52998224725", True)}
    assert ("cpf", "52998224724", True) not in kinds("anota aí 52998224724")


@pytest.mark.parametrize("text, value", [
    ("Meu telefone é (11) 98765-4321", "11987654321"),
    ("meu celular é onze nove oito sete meia cinco quatro três dois um", "11987654321"),
    ("o telefone é +55 21 3456-7890", "2134567890"),
    ("meu whatsapp é 0 11 98765 4321", "11987654321"),
])
def test_phone(text, value):
    assert ("phone", value, True) in kinds(text)


def test_phone_rules():
    assert normalise_phone("11987654321") == "11987654321"
    assert normalise_phone("11887654321") is None  # 9-digit numbers start with 9
    assert normalise_phone("01134567890") == "1134567890"  # long-distance 0 prefix dropped
    assert normalise_phone("01987654321") is None  # landlines start with 2-5
    assert normalise_phone("1018765432") is None  # DDD has no zero


def test_protocol_digits_and_codes():
    assert ("protocol", "202456789", True) in kinds("O protocolo é 2024 5678 9")
    assert kinds("anota o protocolo ABC-12345 por favor") == {("protocol", "ABC12345", True)}


def test_money():
    found = kinds("A conta veio R$ 1.234,56 mas devia ser 50 reais e 5 centavos, "
                  "ou uns cento e cinquenta reais")
    assert {("money", "1234.56", True), ("money", "50.05", True),
            ("money", "150.00", True)} <= found


def test_dates():
    found = kinds("Venceu dia 5 de março de 2024, e a outra vence 10/04 ou vinte e cinco de dezembro")
    assert {("date", "2024-03-05", True), ("date", "--04-10", True),
            ("date", "--12-25", True)} <= found
    assert not any(k == "date" for k, _, _ in kinds("o dia 45/13 não existe"))


@pytest.mark.parametrize("text, name", [
    ("Oi, meu nome é maria da silva e eu queria ver minha fatura", "Maria da Silva"),
    ("Boa tarde, aqui é o João Pereira, tudo bem?", "João Pereira"),
    ("me chamo Ana", "Ana"),
])
def test_names(text, name):
    assert ("name", name, True) in kinds(text)


def test_no_name_from_ordinary_phrases():
    assert not any(k == "name" for k, _, _ in kinds("sou a favor de cancelar"))
    assert not any(k == "name" for k, _, _ in kinds("eu sou cliente há anos"))


def test_spoken_digits():
    assert spoken_to_digits("um dois três") == "123"
    assert spoken_to_digits("cento e vinte e três, quatro cinco") == "12345"
    assert spoken_to_digits("nove oito sete meia") == "9876"
    assert spoken_to_digits("quero um café") == "quero um café"  # "um" alone is an article


def test_entities_carry_the_turn_index():
    assert {e.turn for e in extract_entities("meu cpf é 52998224725", turn=3)} == {3}
