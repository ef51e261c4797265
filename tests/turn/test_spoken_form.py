from theo_ray.sim.intelligibility import normalise
from theo_ray.turn.spoken_form import spoken_form


def test_money_is_said_in_words_with_brazilian_number_format():
    assert spoken_form("A fatura é de R$ 89,90.") == "A fatura é de oitenta e nove reais e noventa centavos."
    assert spoken_form("Custa R$1.234,5 reais") == "Custa mil duzentos e trinta e quatro reais e cinquenta centavos"
    assert spoken_form("R$ 1,00 ou R$ 120") == "um real ou cento e vinte reais"
    assert spoken_form("taxa de R$ 0,50") == "taxa de cinquenta centavos"


def test_percentages_are_said_and_other_numbers_are_left_alone():
    assert spoken_form("desconto de 10% ou 2,5 %") == "desconto de dez por cento ou dois vírgula cinco por cento"
    assert spoken_form("protocolo 2024 0001, dia 10") == "protocolo 2024 0001, dia 10"


def test_intelligibility_compares_what_the_voice_was_given():
    assert normalise("É de R$ 89,90.") == normalise("é de oitenta e nove reais e noventa centavos")
